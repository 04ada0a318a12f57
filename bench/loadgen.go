// Load generator for the daemon-throughput benchmark (bench/run.mjs section 3), in Go so that it
// costs the shared 2 cores as little as possible: the Node load generator it replaces used
// 55-65% of a core for itself at 64 clients, and the daemon measured ~20% slower beside it.
//
//	loadgen '<json options>'    prints one JSON line: {"conc", "add": phase, "del": phase}
//
// Options: socket, conc, count, config (the network config object), prefix (container id
// prefix), daemonPid (whose CPU time to report), warmup (ADD+DEL pairs per client before
// measuring, default 5). Phase ADD: `count` ADDs of distinct containers from `conc` concurrent
// clients; phase DEL: the same containers DELeted. One connection per request, "Connection:
// close", as the plugin does. Standard library only; built by bench/run.mjs with Debian's
// golang-go.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	Socket    string          `json:"socket"`
	Conc      int             `json:"conc"`
	Count     int             `json:"count"`
	Config    json.RawMessage `json:"config"`
	Prefix    string          `json:"prefix"`
	DaemonPid int             `json:"daemonPid"`
	Warmup    *int            `json:"warmup"`
}

type phaseResult struct {
	N            int     `json:"n"`
	Seconds      float64 `json:"seconds"`
	PerSecond    float64 `json:"perSecond"`
	P50          float64 `json:"p50"`
	P99          float64 `json:"p99"`
	Max          float64 `json:"max"`
	Errors       int64   `json:"errors"`
	FirstError   string  `json:"firstError,omitempty"`
	ClientCpuPct float64 `json:"clientCpuPct"`
	DaemonCpuPct float64 `json:"daemonCpuPct"`
}

// cpuMsOf is utime+stime of a process in ms, from /proc/PID/stat (clock ticks of 10 ms).
func cpuMsOf(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndex(s, ")")+2:])
	user, _ := strconv.ParseFloat(fields[11], 64)
	system, _ := strconv.ParseFloat(fields[12], 64)
	return (user + system) * 10
}

func ownCpuMs() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e6
}

// request sends one prepared request on a new connection and reads the answer to EOF.
func request(socket string, req []byte) (status int, body string, elapsed time.Duration, err error) {
	start := time.Now()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		return 0, "", 0, err
	}
	defer conn.Close()
	if _, err = conn.Write(req); err != nil {
		return 0, "", 0, err
	}
	answer, err := io.ReadAll(conn)
	elapsed = time.Since(start)
	if err != nil {
		return 0, "", 0, err
	}
	sep := bytes.Index(answer, []byte("\r\n\r\n"))
	if len(answer) < 12 || !bytes.HasPrefix(answer, []byte("HTTP/1.")) || sep < 0 {
		return 0, "", 0, fmt.Errorf("malformed answer %q", answer)
	}
	status, _ = strconv.Atoi(string(answer[9:12]))
	return status, string(answer[sep+4:]), elapsed, nil
}

func phase(o options, path string, ids []string) phaseResult {
	requests := make([][]byte, len(ids))
	for i, id := range ids {
		payload := `{"env":{"CNI_CONTAINERID":` + strconv.Quote(id) + `,"CNI_NETNS":"/var/run/netns/bench","CNI_IFNAME":"eth0"},"config":` + string(o.Config) + `}`
		requests[i] = []byte("POST " + path + " HTTP/1.1\r\nHost: reservoird\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(payload)) + "\r\n\r\n" + payload)
	}
	latencies := make([]float64, len(ids))
	var next int64 = -1
	var errors int64
	var firstError atomic.Value
	cpu0, daemonCpu0 := ownCpuMs(), cpuMsOf(o.DaemonPid)
	t0 := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < o.Conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(atomic.AddInt64(&next, 1))
				if i >= len(ids) {
					return
				}
				status, body, elapsed, err := request(o.Socket, requests[i])
				latencies[i] = float64(elapsed.Nanoseconds()) / 1e6
				if err != nil || status != 200 {
					atomic.AddInt64(&errors, 1)
					msg := fmt.Sprintf("%d %s", status, body)
					if err != nil {
						msg = err.Error()
					}
					if len(msg) > 300 {
						msg = msg[:300]
					}
					firstError.CompareAndSwap(nil, msg)
				}
			}
		}()
	}
	wg.Wait()
	seconds := time.Since(t0).Seconds()
	cpu, daemonCpu := ownCpuMs()-cpu0, cpuMsOf(o.DaemonPid)-daemonCpu0
	sort.Float64s(latencies)
	percentile := func(p float64) float64 { // nearest rank, as bench/http.mjs's percentile
		i := int(float64(len(latencies))*p/100+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(latencies) {
			i = len(latencies) - 1
		}
		return latencies[i]
	}
	first, _ := firstError.Load().(string)
	return phaseResult{
		N: len(ids), Seconds: seconds, PerSecond: float64(len(ids)) / seconds,
		P50: percentile(50), P99: percentile(99), Max: latencies[len(latencies)-1],
		Errors: errors, FirstError: first,
		ClientCpuPct: cpu / (seconds * 1000) * 100, DaemonCpuPct: daemonCpu / (seconds * 1000) * 100,
	}
}

func containerIds(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + "-" + strconv.Itoa(i)
	}
	return ids
}

func main() {
	var o options
	if len(os.Args) != 2 || json.Unmarshal([]byte(os.Args[1]), &o) != nil || o.Socket == "" || o.Conc < 1 || o.Count < 1 {
		fmt.Fprintln(os.Stderr, `usage: loadgen '{"socket","conc","count","config","prefix","daemonPid","warmup"}'`)
		os.Exit(2)
	}
	warmup := 5
	if o.Warmup != nil {
		warmup = *o.Warmup
	}
	if warmup > 0 {
		warm := containerIds(o.Prefix+"-w", o.Conc*warmup)
		phase(o, "/v1/cni/add", warm)
		phase(o, "/v1/cni/del", warm)
	}
	ids := containerIds(o.Prefix, o.Count)
	add := phase(o, "/v1/cni/add", ids)
	del := phase(o, "/v1/cni/del", ids)
	out, _ := json.Marshal(map[string]interface{}{"conc": o.Conc, "add": add, "del": del})
	fmt.Println(string(out))
}
