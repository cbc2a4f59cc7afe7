// Command tinyapp is the smallest program FromGoPackage's unit tests build:
// it prints its arguments.
package main

import (
	"fmt"
	"os"
)

func main() { fmt.Println(os.Args[1:]) }
