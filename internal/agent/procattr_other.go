//go:build unix && !linux

package agent

import "syscall"

// sysProcAttr puts Envoy in its own process group, so a terminal's SIGINT
// goes to the agent, which drains Envoy first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
