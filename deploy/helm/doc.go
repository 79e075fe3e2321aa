// Package helm holds the tests of the Helm chart in hermes-s6/: every
// rendered object decodes strictly into its Kubernetes type, the pod meets
// the restricted Pod Security Standard, bad values fail with a clear
// message, and deploy/kubernetes/hermes-s6.yaml is the chart's default
// rendering.
package helm
