// Command etcd is the upstream etcd server, built from the Go module proxy because Debian's
// etcd (3.4) is too old for a 1.34 API server.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
