package heph

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// CopyToContainer copies the file or directory at hostPath to containerPath
// (absolute) in a container, running or not, so that containerPath becomes
// that file or directory. Missing parent directories are created. Modes are
// kept; ownership becomes root's.
func (o *Orchestrator) CopyToContainer(ctx context.Context, id, hostPath, containerPath string) error {
	if !path.IsAbs(containerPath) {
		return invalid("containerPath", containerPath, "must be an absolute path in the container")
	}
	if _, err := os.Lstat(hostPath); err != nil {
		return invalid("hostPath", hostPath, err.Error())
	}
	return o.putArchive(ctx, id, "copy "+quote(hostPath)+" into container", func(tw *tar.Writer) error {
		return tarTree(tw, hostPath, strings.TrimPrefix(path.Clean(containerPath), "/"), nil)
	})
}

// copyFiles writes files (container path → content) into a container.
func (o *Orchestrator) copyFiles(ctx context.Context, id string, files []fileSpec) error {
	return o.putArchive(ctx, id, "copy files into container", func(tw *tar.Writer) error {
		for _, f := range files {
			hdr := &tar.Header{
				Name:     strings.TrimPrefix(path.Clean(f.path), "/"),
				Mode:     int64(f.mode.Perm()),
				Size:     int64(len(f.content)),
				Typeflag: tar.TypeReg,
				ModTime:  time.Now(),
			}
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if _, err := tw.Write(f.content); err != nil {
				return err
			}
		}
		return nil
	})
}

// putArchive streams a tar written by fill into the container's root: the
// daemon creates missing parent directories.
func (o *Orchestrator) putArchive(ctx context.Context, id, op string, fill func(*tar.Writer) error) error {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := fill(tw)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	_, err := o.api.CopyToContainer(ctx, id, client.CopyToContainerOptions{DestinationPath: "/", Content: pr, AllowOverwriteDirWithFile: false})
	return wrap(op, o.nameOf(id), err, ErrContainerNotFound)
}

// tarTree writes the file or directory at src into tw, each entry named
// dst joined with its path relative to src (src itself is named dst, and is
// not written when dst is ""). exclude, when not nil, is asked about every
// entry below src by its slash-separated relative path: an excluded
// directory is not walked. Ownership is written as root's.
func tarTree(tw *tar.Writer, src, dst string, exclude func(rel string, isDir bool) (bool, error)) error {
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

// CopyFromContainer copies the file or directory at containerPath in a
// container to hostPath, so that hostPath becomes that file or directory
// (its parent must exist). Regular files, directories and symbolic links
// are copied with their modes; an entry that would land outside hostPath is
// an error.
func (o *Orchestrator) CopyFromContainer(ctx context.Context, id, containerPath, hostPath string) error {
	if !path.IsAbs(containerPath) {
		return invalid("containerPath", containerPath, "must be an absolute path in the container")
	}
	op := "copy " + quote(containerPath) + " from container"
	res, err := o.api.CopyFromContainer(ctx, id, client.CopyFromContainerOptions{SourcePath: containerPath})
	if err != nil {
		return wrap(op, o.nameOf(id), err, ErrContainerNotFound)
	}
	defer res.Content.Close()
	if err := untarTree(res.Content, hostPath); err != nil {
		return wrap(op, o.nameOf(id), err, nil)
	}
	return nil
}

// untarTree extracts a tar whose entries all sit under one top-level name
// (the copied file or directory) so that this top-level entry becomes dst.
func untarTree(r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	dst = filepath.Clean(dst)
	top := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if top == "" {
				return errors.New("the archive is empty")
			}
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(hdr.Name)
		first, rest, _ := strings.Cut(name, "/")
		if top == "" {
			top = first
		}
		if first != top || name == ".." || strings.HasPrefix(rest, "../") || strings.Contains(rest, "/../") {
			return fmt.Errorf("archive entry %q is outside the copied path", hdr.Name)
		}
		target := filepath.Join(dst, filepath.FromSlash(rest))
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		default:
			// Devices, fifos and hard links are not copied.
		}
	}
}
