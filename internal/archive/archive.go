// Package archive writes and reads the tar streams heph exchanges with the
// daemon: a host file or directory sent into a container, a Docker build
// context (honouring .dockerignore), and a container's file or directory
// extracted on the host without ever writing outside the destination.
package archive

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// WriteTree writes the file or directory at src into tw, each entry named
// dst joined with its path relative to src (src itself is named dst, and is
// not written when dst is ""). exclude, when not nil, is asked about every
// entry below src by its slash-separated relative path: an excluded
// directory is not walked. Ownership is written as root's. Sockets and
// other special files cannot be sent: they are skipped.
func WriteTree(tw *tar.Writer, src, dst string, exclude func(rel string, isDir bool) (bool, error)) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		name := dst
		if rel != "." {
			if exclude != nil {
				skip, err := exclude(rel, d.IsDir())
				if err != nil {
					return err
				}
				if skip {
					if d.IsDir() {
						return filepath.SkipDir
					}
					return nil
				}
			}
			name = path.Join(dst, rel)
		} else if dst == "" {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode()&(fs.ModeSocket|fs.ModeNamedPipe|fs.ModeDevice|fs.ModeCharDevice|fs.ModeIrregular) != 0 {
			return nil
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = name
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
}

// BuildContext writes contextDir as a build context tar stream, leaving out
// what its .dockerignore ignores (the Dockerfile and .dockerignore
// themselves are always sent, as are the files named in extra, relative to
// contextDir). A context directory that is a symbolic link is followed.
func BuildContext(w io.Writer, contextDir string, extra ...string) error {
	if resolved, err := filepath.EvalSymlinks(contextDir); err == nil {
		contextDir = resolved
	}
	var patterns []string
	if f, err := os.Open(filepath.Join(contextDir, ".dockerignore")); err == nil {
		patterns, err = ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("read .dockerignore: %w", err)
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return fmt.Errorf("parse .dockerignore: %w", err)
	}
	keep := map[string]bool{"Dockerfile": true, ".dockerignore": true}
	for _, e := range extra {
		keep[filepath.ToSlash(filepath.Clean(e))] = true
	}
	tw := tar.NewWriter(w)
	err = WriteTree(tw, contextDir, "", func(rel string, isDir bool) (bool, error) {
		if keep[rel] || isDir && holdsKept(keep, rel) {
			return false, nil // the daemon needs them, whatever the patterns say
		}
		skip, err := pm.MatchesOrParentMatches(rel)
		// An ignored directory may still hold files an exception
		// (!pattern) brings back: then it is sent, and its files are
		// judged one by one.
		return skip && !(isDir && pm.Exclusions()), err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// holdsKept reports whether directory dir (slash-separated, relative to the
// context) holds one of the files that are always sent: then it is walked,
// and its other files are judged one by one.
func holdsKept(keep map[string]bool, dir string) bool {
	for k := range keep {
		if strings.HasPrefix(k, dir+"/") {
			return true
		}
	}
	return false
}

// File is a file to write into a container: its absolute path there, its
// permission bits and its content.
type File struct {
	Path    string
	Mode    fs.FileMode
	Content []byte
}

// WriteFiles writes files as regular-file entries, named without the
// leading "/" (relative to the root the archive is put at).
func WriteFiles(tw *tar.Writer, files []File) error {
	for _, f := range files {
		hdr := &tar.Header{
			Name:     strings.TrimPrefix(path.Clean(f.Path), "/"),
			Mode:     int64(f.Mode.Perm()),
			Size:     int64(len(f.Content)),
			Typeflag: tar.TypeReg,
			ModTime:  time.Now(),
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.Content); err != nil {
			return err
		}
	}
	return nil
}

// Stream returns the tar archive that fill writes, as it is written (fill
// runs in its own goroutine; a failure of fill is the reader's error). The
// caller closes it.
func Stream(fill func(*tar.Writer) error) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := fill(tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}
