// Process timer for the plugin-floor benchmark (bench/run.mjs section 1): starts each program as
// a container runtime does (Go's os/exec, as containerd and libcni exec CNI plugins) and times it
// from start to exit. Timing from inside bench/run.mjs was not fair: Node forks its whole process
// for every spawnSync, so each start there cost time in proportion to the benchmark's own memory
// (a host-local ADD+DEL measured 14 ms from a fresh Node, 60 ms from one holding 200 MB), which
// added the same large constant to every program and pulled every ratio towards 1.
//
//	spawntimer '<json options>'    prints one JSON line: {"samples": {task: [ms, ...]}, "add": ..., "del": ...}
//
// Options: rounds, warmup (rounds not recorded), tasks: [{name, kind "run" | "pair", argv, env
// (KEY=VALUE list), stdin (a file, opened afresh for each start), status (the exit status
// expected, default 0), contains (a string stdout must hold)}]. A "pair" runs argv twice, as
// CNI_COMMAND=ADD then DEL for a new CNI_CONTAINERID; its sample is the sum. Each round runs every
// task once, in a random order. Standard library only; built by bench/run.mjs with golang-go.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"strings"
	"time"
)

type task struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Argv     []string `json:"argv"`
	Env      []string `json:"env"`
	Stdin    string   `json:"stdin"`
	Status   int      `json:"status"`
	Contains string   `json:"contains"`
}

type options struct {
	Rounds int    `json:"rounds"`
	Warmup int    `json:"warmup"`
	Tasks  []task `json:"tasks"`
}

type output struct {
	Samples map[string][]float64 `json:"samples"`
	Add     map[string][]float64 `json:"add"`
	Del     map[string][]float64 `json:"del"`
	// CPU: the user + system CPU time of the same starts (of a pair, both), in ms: what the
	// program itself spent, which waiting for a busy machine's cores does not inflate.
	CPU map[string][]float64 `json:"cpu"`
}

var seq int

// start runs argv once with env and a fresh descriptor of stdin; returns its wall time and its
// CPU time (user + system), in ms.
func start(t task, env []string) (float64, float64, error) {
	in, err := os.Open(t.Stdin)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	cmd := exec.Command(t.Argv[0], t.Argv[1:]...)
	cmd.Env = env
	cmd.Stdin = in
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	began := time.Now()
	err = cmd.Run()
	ms := float64(time.Since(began).Nanoseconds()) / 1e6
	status := 0
	if exit, ok := err.(*exec.ExitError); ok {
		status = exit.ExitCode()
	} else if err != nil {
		return 0, 0, err
	}
	if status != t.Status || !strings.Contains(stdout.String(), t.Contains) {
		return 0, 0, fmt.Errorf("%s exited %d (want %d): stdout %q stderr %q", t.Name, status, t.Status, stdout.String(), stderr.String())
	}
	cpu := float64((cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Nanoseconds()) / 1e6
	return ms, cpu, nil
}

func runTask(t task, out *output, record bool) error {
	if t.Kind == "run" {
		ms, cpu, err := start(t, t.Env)
		if err == nil && record {
			out.Samples[t.Name] = append(out.Samples[t.Name], ms)
			out.CPU[t.Name] = append(out.CPU[t.Name], cpu)
		}
		return err
	}
	seq++
	id := fmt.Sprintf("floor-%s-%d-%d", t.Name, os.Getpid(), seq)
	var times, cpus [2]float64
	for i, command := range []string{"ADD", "DEL"} {
		env := append(append([]string{}, t.Env...), "CNI_COMMAND="+command, "CNI_CONTAINERID="+id)
		step := t
		if command == "DEL" {
			step.Contains = ""
		}
		ms, cpu, err := start(step, env)
		if err != nil {
			return err
		}
		times[i], cpus[i] = ms, cpu
	}
	if record {
		out.Samples[t.Name] = append(out.Samples[t.Name], times[0]+times[1])
		out.Add[t.Name] = append(out.Add[t.Name], times[0])
		out.Del[t.Name] = append(out.Del[t.Name], times[1])
		out.CPU[t.Name] = append(out.CPU[t.Name], cpus[0]+cpus[1])
	}
	return nil
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: spawntimer '<json options>'")
		os.Exit(2)
	}
	var opts options
	if err := json.Unmarshal([]byte(os.Args[1]), &opts); err != nil {
		fmt.Fprintln(os.Stderr, "spawntimer: bad options:", err)
		os.Exit(2)
	}
	out := output{Samples: map[string][]float64{}, Add: map[string][]float64{}, Del: map[string][]float64{}, CPU: map[string][]float64{}}
	for round := 0; round < opts.Warmup+opts.Rounds; round++ {
		for _, i := range rand.Perm(len(opts.Tasks)) {
			if err := runTask(opts.Tasks[i], &out, round >= opts.Warmup); err != nil {
				fmt.Fprintln(os.Stderr, "spawntimer:", err)
				os.Exit(1)
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		os.Exit(1)
	}
}
