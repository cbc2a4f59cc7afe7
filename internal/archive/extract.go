package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Extract extracts a tar whose entries all sit under one top-level name (the
// file or directory a container copied out) so that this top-level entry
// becomes dst. Regular files, directories and symbolic links are copied with
// their permission bits; devices and fifos are skipped.
func Extract(r io.Reader, dst string) error {
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
			// The archive's bits, not those the umask left, nor those of a
			// file that was there.
			if err := os.Chmod(target, mode); err != nil {
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
