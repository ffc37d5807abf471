package agent

import "syscall"

// sysProcAttr puts Envoy in its own process group (a terminal's SIGINT goes
// to the agent, which drains Envoy first, not to Envoy directly) and has the
// kernel kill Envoy if the agent dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
