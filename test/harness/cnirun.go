// cnirun: a minimal CNI runtime for end-to-end tests, built on libcni.
//
// Usage:
//
//	cnirun add|check|del CONFLIST_FILE CONTAINER_ID NETNS_PATH IFNAME
//
// Environment:
//
//	CNI_PATH       plugin directories, colon-separated (required)
//	CNI_CACHE_DIR  libcni cache dir (results cached by ADD, read by CHECK/DEL).
//	               Default: $TMPDIR/cnirun-cache (shared; tests should set it).
//	CAP_ARGS       JSON object -> RuntimeConf.CapabilityArgs (runtimeConfig)
//	EXTRA_ARGS     "K=V;K2=V2" -> RuntimeConf.Args (CNI_ARGS)
//
// Output: ADD prints the result JSON (as returned by libcni, in the
// conflist's cniVersion) on stdout. On failure the error message goes to
// stderr and, when the underlying error is a *types.Error, its JSON
// {code,msg,details} is printed on stdout. Exit 0 on success, 1 on
// operation failure, 2 on usage/setup error.
//
// GC and STATUS are not supported: libcni 1.1.2 (golang-github-appc-cni-dev
// in Debian bookworm) has no GCNetworkList / GetStatusNetworkList.
//
// Build: GO111MODULE=off GOPATH=/usr/share/gocode go build (see build.sh).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func usage(msg string) {
	if msg != "" {
		fmt.Fprintf(os.Stderr, "cnirun: %s\n", msg)
	}
	fmt.Fprintln(os.Stderr, "usage: cnirun add|check|del CONFLIST_FILE CONTAINER_ID NETNS_PATH IFNAME")
	fmt.Fprintln(os.Stderr, "env: CNI_PATH (required), CNI_CACHE_DIR, CAP_ARGS (JSON object), EXTRA_ARGS (K=V;K2=V2)")
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "cnirun: %v\n", err)
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		out, _ := json.Marshal(cniErr)
		fmt.Fprintln(os.Stdout, string(out))
	}
	os.Exit(1)
}

func parseExtraArgs(s string) ([][2]string, error) {
	var args [][2]string
	for _, kv := range strings.Split(s, ";") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) != 2 || parts[0] == "" {
			return nil, fmt.Errorf("invalid EXTRA_ARGS entry %q (want K=V)", kv)
		}
		args = append(args, [2]string{parts[0], parts[1]})
	}
	return args, nil
}

func main() {
	if len(os.Args) != 6 {
		usage("wrong number of arguments")
	}
	cmd, confFile, containerID, netnsPath, ifName := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	switch cmd {
	case "add", "check", "del":
	case "gc", "status":
		fmt.Fprintf(os.Stderr, "cnirun: %q is not supported: the installed libcni (1.1.2) has no GCNetworkList/GetStatusNetworkList\n", cmd)
		os.Exit(2)
	default:
		usage(fmt.Sprintf("unknown command %q", cmd))
	}

	cniPath := os.Getenv("CNI_PATH")
	if cniPath == "" {
		usage("CNI_PATH must be set")
	}
	var paths []string
	for _, p := range filepath.SplitList(cniPath) {
		if p != "" {
			paths = append(paths, p)
		}
	}

	cacheDir := os.Getenv("CNI_CACHE_DIR")
	if cacheDir == "" {
		cacheDir = filepath.Join(os.TempDir(), "cnirun-cache")
	}

	list, err := libcni.ConfListFromFile(confFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cnirun: loading %s: %v\n", confFile, err)
		os.Exit(2)
	}

	rt := &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       netnsPath,
		IfName:      ifName,
	}
	if s := os.Getenv("CAP_ARGS"); s != "" {
		capArgs := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &capArgs); err != nil {
			usage(fmt.Sprintf("CAP_ARGS is not a JSON object: %v", err))
		}
		rt.CapabilityArgs = capArgs
	}
	if s := os.Getenv("EXTRA_ARGS"); s != "" {
		args, err := parseExtraArgs(s)
		if err != nil {
			usage(err.Error())
		}
		rt.Args = args
	}

	cninet := libcni.NewCNIConfigWithCacheDir(paths, cacheDir, nil)
	ctx := context.Background()

	switch cmd {
	case "add":
		result, err := cninet.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail(err)
		}
		if result == nil {
			fmt.Fprintln(os.Stdout, "{}")
			return
		}
		if err := result.PrintTo(os.Stdout); err != nil {
			fail(fmt.Errorf("printing result: %w", err))
		}
		fmt.Fprintln(os.Stdout)
	case "check":
		if err := cninet.CheckNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	case "del":
		if err := cninet.DelNetworkList(ctx, list, rt); err != nil {
			fail(err)
		}
	}
}
