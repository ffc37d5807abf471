// Package agent is meshd's replacement for the App Mesh / ECS Service
// Connect agent (aws/amazon-ecs-service-connect-agent): it renders Envoy's
// bootstrap from the App Mesh environment variables, runs Envoy as a child
// process and restarts it, polls its health, and serves the small admin API
// ECS and operators call (/status, /drain_listeners, /enableLogging,
// /stats/prometheus).
//
// The pieces are independent components, each a Run(ctx) error for
// internal/run's supervisor:
//
//   - Envoy (envoy.go) starts Envoy with App Mesh's command line, restarts
//     it with backoff up to APPNET_ENVOY_RESTART_COUNT times, and on
//     cancellation drains its listeners before stopping it. It publishes
//     what it does to a Process, which the others watch.
//   - Health (health.go) polls Envoy's /ready and two stats and keeps the
//     /status document (App Mesh's JSON, byte for byte).
//   - Snapshotter (snapshot.go) takes the metrics-extension families every
//     minute and keeps the delta /stats/prometheus?delta serves.
//   - Server (server.go) is the admin API over TCP or a Unix socket, behind
//     one shared token bucket.
//
// Config (config.go) is read from the environment once, strictly: a value
// that does not parse is an error naming the variable and what is allowed;
// a number out of App Mesh's range gets App Mesh's fallback and a warning,
// so existing task definitions keep working.
package agent
