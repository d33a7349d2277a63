// Command nkey makes a NATS user nkey for testdata/cluster/run.sh: it
// writes the seed to the file named by its argument (mode 0600) and prints
// the public key, which the servers' configuration lists.
package main

import (
	"fmt"
	"os"

	"github.com/nats-io/nkeys"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: nkey SEED_FILE")
		os.Exit(2)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	if err := os.WriteFile(os.Args[1], append(seed, '\n'), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(pub)
}
