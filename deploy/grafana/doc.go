// Package grafana holds meshd's Grafana dashboard (meshd-appmesh.json) for
// the App Mesh metrics extension and meshd's own metrics; its test checks
// the dashboard against the metrics meshd exports.
package grafana
