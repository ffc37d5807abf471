// Package ecs holds meshd's Amazon ECS deployment — task definitions, the
// control plane's CloudFormation template, the Dockerfile of the images
// (see README.md) — and the tests that keep them honest: every task
// definition is decoded strictly into the AWS SDK's RegisterTaskDefinition
// input and sent through the SDK's own validation and serializer, checked
// against what App Mesh required of a task (proxy configuration, Envoy's
// user, dependencies, health checks) and against the mesh in examples/apps;
// every meshd command line is parsed by meshd's own flag sets, every Envoy
// environment is rendered into a bootstrap; the CloudFormation template is
// decoded into goformation's typed resources and checked against the
// CloudFormation schema; the commands of README.md and docs/migration.md are
// parsed, and the cheap ones run.
package ecs
