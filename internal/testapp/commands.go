package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// runCommand runs the one-shot subcommand name and returns the exit code: 0 success,
// 1 failure, 2 bad usage.
func runCommand(name string, args []string, stdout, stderr io.Writer) int {
	c := cmd{name: name, stdout: stdout, stderr: stderr}
	switch name {
	case "health":
		return c.health(args)
	case "fetch":
		return c.fetch(args)
	case "dial":
		return c.dial(args)
	case "resolve":
		return c.resolve(args)
	case "echo":
		fmt.Fprintln(stdout, strings.Join(args, " "))
		return 0
	case "echo-stderr":
		fmt.Fprintln(stderr, strings.Join(args, " "))
		return 0
	case "exit":
		return c.exit(args)
	case "sleep":
		return c.sleep(args)
	case "cat":
		return c.cat(args)
	case "ls":
		return c.ls(args)
	case "write":
		return c.write(args)
	case "help":
		fmt.Fprint(stdout, usage())
		return 0
	}
	fmt.Fprintf(stderr, "testapp: unknown command %q\n\n%s", name, usage())
	return 2
}

type cmd struct {
	name           string
	stdout, stderr io.Writer
}

// usageErr reports bad usage and returns 2.
func (c cmd) usageErr(synopsis string, err error) int {
	if err != nil {
		fmt.Fprintf(c.stderr, "testapp %s: %v\n", c.name, err)
	}
	fmt.Fprintf(c.stderr, "usage: testapp %s %s\n", c.name, synopsis)
	return 2
}

// fail reports a failure and returns 1.
func (c cmd) fail(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "testapp: "+format+"\n", a...)
	return 1
}

// flags returns a strict flag set for the subcommand.
func (c cmd) flags() *flag.FlagSet {
	fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseMixed parses flags placed before, between or after the positional arguments, which it
// returns. "--" ends the flags.
func parseMixed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) >= len(rest)+1 && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func (c cmd) health(args []string) int {
	const synopsis = "[-file PATH]"
	fs := c.flags()
	file := fs.String("file", defaultHealthFile, "")
	pos, err := parseMixed(fs, args)
	if err != nil {
		return c.usageErr(synopsis, err)
	}
	if len(pos) > 0 {
		return c.usageErr(synopsis, fmt.Errorf("unexpected argument %q", pos[0]))
	}
	if _, err := os.Stat(*file); err != nil {
		return c.fail("unhealthy: %v", err)
	}
	return 0
}

func (c cmd) fetch(args []string) int {
	const synopsis = "URL [-timeout D] [-insecure]"
	fs := c.flags()
	timeout := fs.Duration("timeout", 2*time.Second, "")
	insecure := fs.Bool("insecure", false, "")
	pos, err := parseMixed(fs, args)
	if err == nil && len(pos) != 1 {
		err = fmt.Errorf("want one URL, got %d arguments", len(pos))
	}
	if err == nil && *timeout <= 0 {
		err = fmt.Errorf("-timeout must be positive, got %v", *timeout)
	}
	if err != nil {
		return c.usageErr(synopsis, err)
	}
	resp, err := httpClient(*timeout, *insecure).Get(pos[0])
	if err != nil {
		return c.fail("fetch %s: %v", pos[0], err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(c.stdout, resp.Body); err != nil {
		return c.fail("fetch %s: reading body: %v", pos[0], err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.fail("fetch %s: status %s", pos[0], resp.Status)
	}
	return 0
}

func (c cmd) dial(args []string) int {
	const synopsis = "HOST:PORT [-timeout D]"
	fs := c.flags()
	timeout := fs.Duration("timeout", 2*time.Second, "")
	pos, err := parseMixed(fs, args)
	if err == nil && len(pos) != 1 {
		err = fmt.Errorf("want one HOST:PORT, got %d arguments", len(pos))
	}
	if err == nil && *timeout <= 0 {
		err = fmt.Errorf("-timeout must be positive, got %v", *timeout)
	}
	if err != nil {
		return c.usageErr(synopsis, err)
	}
	conn, err := net.DialTimeout("tcp", pos[0], *timeout)
	if err != nil {
		return c.fail("dial %s: %v", pos[0], err)
	}
	conn.Close()
	fmt.Fprintln(c.stdout, "connected")
	return 0
}

func (c cmd) resolve(args []string) int {
	const synopsis = "NAME [-timeout D]"
	fs := c.flags()
	timeout := fs.Duration("timeout", 2*time.Second, "")
	pos, err := parseMixed(fs, args)
	if err == nil && len(pos) != 1 {
		err = fmt.Errorf("want one NAME, got %d arguments", len(pos))
	}
	if err == nil && *timeout <= 0 {
		err = fmt.Errorf("-timeout must be positive, got %v", *timeout)
	}
	if err != nil {
		return c.usageErr(synopsis, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupHost(ctx, pos[0])
	if err != nil {
		return c.fail("resolve %s: %v", pos[0], err)
	}
	if len(addrs) == 0 {
		return c.fail("resolve %s: no addresses", pos[0])
	}
	sort.Strings(addrs)
	for _, a := range addrs {
		fmt.Fprintln(c.stdout, a)
	}
	return 0
}

func (c cmd) exit(args []string) int {
	if len(args) != 1 {
		return c.usageErr("N", fmt.Errorf("want one exit code, got %d arguments", len(args)))
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n < 0 || n > 255 {
		return c.usageErr("N", fmt.Errorf("bad exit code %q: want 0-255", args[0]))
	}
	return n
}

func (c cmd) sleep(args []string) int {
	if len(args) != 1 {
		return c.usageErr("D", fmt.Errorf("want one duration, got %d arguments", len(args)))
	}
	d, err := time.ParseDuration(args[0])
	if err != nil {
		secs, serr := strconv.ParseFloat(args[0], 64)
		if serr != nil {
			return c.usageErr("D", fmt.Errorf("bad duration %q", args[0]))
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return c.usageErr("D", fmt.Errorf("negative duration %q", args[0]))
	}
	time.Sleep(d)
	return 0
}

func (c cmd) cat(args []string) int {
	if len(args) == 0 {
		return c.usageErr("FILE...", errors.New("no files"))
	}
	code := 0
	for _, file := range args {
		f, err := os.Open(file)
		if err != nil {
			code = c.fail("cat: %v", err)
			continue
		}
		_, err = io.Copy(c.stdout, f)
		f.Close()
		if err != nil {
			code = c.fail("cat %s: %v", file, err)
		}
	}
	return code
}

func (c cmd) ls(args []string) int {
	if len(args) != 1 {
		return c.usageErr("PATH", fmt.Errorf("want one PATH, got %d arguments", len(args)))
	}
	lines, err := listTree(args[0])
	for _, l := range lines {
		fmt.Fprintln(c.stdout, l)
	}
	if err != nil {
		return c.fail("ls: %v", err)
	}
	return 0
}

// listTree lists root recursively in lexical order as "<relpath> <size> <mode>" lines, paths
// relative to root with forward slashes; directories have size 0, symbolic links their
// target appended as "-> target". root itself is listed only if it is not a directory.
func listTree(root string) ([]string, error) {
	var lines []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == "." {
			if d.IsDir() {
				return nil
			}
			rel = filepath.Base(path)
		}
		size := info.Size()
		if d.IsDir() {
			size = 0
		}
		line := fmt.Sprintf("%s %d %s", filepath.ToSlash(rel), size, info.Mode())
		if info.Mode()&fs.ModeSymlink != 0 {
			if target, err := os.Readlink(path); err == nil {
				line += " -> " + target
			}
		}
		lines = append(lines, line)
		return nil
	})
	return lines, err
}

func (c cmd) write(args []string) int {
	if len(args) != 2 {
		return c.usageErr("FILE CONTENT", fmt.Errorf("want FILE and CONTENT, got %d arguments", len(args)))
	}
	if err := writeFile(args[0], args[1]); err != nil {
		return c.fail("write: %v", err)
	}
	return 0
}
