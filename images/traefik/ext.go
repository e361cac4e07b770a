// Package ext stands in for Traefik's dynamic-configuration extension point, which carries no
// fields in the open-source build. Upstream keeps it in a nested module (pkg/config/dynamic/ext)
// that the module zip leaves out and the Go module proxy does not serve (403), so
// images/build.py writes this file into its copy of the source before building.
package ext

// HTTP is embedded in dynamic.HTTP; no fields.
type HTTP struct{}

// Router is embedded in dynamic.Router; no fields.
type Router struct{}

// RouterIng is what the Ingress provider's annotations add; no fields.
type RouterIng struct{}

// ToRouter gives the (empty) Router extension for Ingress annotations.
func (r RouterIng) ToRouter() Router { return Router{} }
