// kind-config-check validates kind cluster configuration files exactly as `kind create cluster
// --config` would before it touches a container engine: kind's own strict decoder (unknown
// fields are errors), its defaulting and conversion, then its Validate. It is built inside a
// copy of the kind module because those packages are internal to it (hence its place under pkg/ there).
package main

import (
	"fmt"
	"os"

	"sigs.k8s.io/kind/pkg/internal/apis/config/encoding"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kind-config-check FILE...")
		os.Exit(2)
	}
	failed := false
	for _, path := range os.Args[1:] {
		cfg, err := encoding.Load(path)
		if err == nil {
			err = cfg.Validate()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "%s: invalid: %v\n", path, err)
			failed = true
			continue
		}
		fmt.Printf("%s: valid (%d nodes)\n", path, len(cfg.Nodes))
	}
	if failed {
		os.Exit(1)
	}
}
