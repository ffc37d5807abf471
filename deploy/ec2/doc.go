// Package ec2 holds meshd's deployment on EC2 hosts with systemd — units for
// the control plane, meshd sds, Envoy under meshd agent and the traffic
// redirection, their environment file, users and identities (see
// README.md) — and the tests that keep them honest: systemd-analyze verify
// on every unit, systemd-sysusers applied to a scratch root, every ExecStart
// parsed by meshd's own flag sets with the environment file's values, the
// bootstrap rendered from that file, and the iptables script linted with
// shellcheck and run against a stand-in iptables.
package ec2
