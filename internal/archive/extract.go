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
// becomes dst; dst's parent directories are made when missing. Regular
// files, directories, symbolic links and hard links are made with their
// permission bits (without setuid, setgid and sticky bits); devices and
// fifos are skipped.
//
// Nothing is ever written outside dst, whatever the archive holds:
//   - an entry named outside the top-level name (absolute, "..", another
//     top-level name) is refused;
//   - a symbolic link is made as a link and never followed: an entry below
//     a link — one the archive made or one already in dst — is refused, and
//     a file or link that replaces a link replaces the link itself;
//   - a regular file replaces whatever non-directory was at its name with a
//     new file, so a hard link already in dst to a file elsewhere is never
//     written through;
//   - a hard link is made only to a regular file this extraction made;
//   - a directory is never replaced by a non-directory (an error).
//
// Writes go through os.Root handles on dst and its parent, so no name can
// resolve outside them; symbolic and hard links, which os.Root cannot make
// in Go 1.24, are made by path after each directory on the way has been
// checked to be a real directory. An archive refused halfway leaves what it
// extracted before the refused entry.
func Extract(r io.Reader, dst string) error {
	x, err := newExtractor(dst)
	if err != nil {
		return err
	}
	defer x.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if x.top == "" {
				return errors.New("the archive is empty")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
}

// extractor is the state of one Extract.
type extractor struct {
	dst    string   // absolute, the user's symbolic links resolved
	parent *os.Root // dst's parent directory: only base is touched in it
	base   string   // dst's name in parent
	top    string   // the archive's top-level name; "" before the first entry
	root   *os.Root // dst, once it is a directory

	dirs  map[string]bool // below dst (slash-separated): known real directories
	files map[string]bool // below dst: regular files this extraction made
}

func newExtractor(dst string) (*extractor, error) {
	dst, err := filepath.Abs(dst)
	if err != nil {
		return nil, err
	}
	// dst itself is the caller's choice: a link they name is followed.
	if resolved, err := filepath.EvalSymlinks(dst); err == nil {
		dst = resolved
	}
	dir, base := filepath.Split(dst)
	if base == "" {
		return nil, fmt.Errorf("cannot extract onto %s", dst)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	parent, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &extractor{dst: dst, parent: parent, base: base, dirs: map[string]bool{}, files: map[string]bool{}}, nil
}

func (x *extractor) close() {
	if x.root != nil {
		_ = x.root.Close()
	}
	_ = x.parent.Close()
}

// local maps an archive name to its path below dst (slash-separated; "."
// for the top-level entry itself), or says why it is outside.
func (x *extractor) local(name string) (string, error) {
	clean := path.Clean(name)
	if path.IsAbs(name) || path.IsAbs(clean) {
		return "", fmt.Errorf("archive entry %q has an absolute name", name)
	}
	if x.top == "" {
		first, _, _ := strings.Cut(clean, "/")
		if first == ".." {
			return "", fmt.Errorf("archive entry %q is outside the copied path", name)
		}
		x.top = first
	}
	rel := clean
	if x.top != "." {
		switch after, ok := strings.CutPrefix(clean, x.top+"/"); {
		case clean == x.top:
			rel = "."
		case ok:
			rel = after
		default:
			return "", fmt.Errorf("archive entry %q is outside the copied path %q", name, x.top)
		}
	}
	if !filepath.IsLocal(filepath.FromSlash(rel)) {
		return "", fmt.Errorf("archive entry %q is outside the copied path", name)
	}
	return rel, nil
}

// entry extracts one archive entry.
func (x *extractor) entry(hdr *tar.Header, content io.Reader) error {
	rel, err := x.local(hdr.Name)
	if err != nil {
		return err
	}
	mode := fs.FileMode(hdr.Mode).Perm()
	switch hdr.Typeflag {
	case tar.TypeDir, tar.TypeReg, tar.TypeSymlink, tar.TypeLink:
	default:
		return nil // devices, fifos: not copied
	}
	if rel == "." {
		return x.topEntry(hdr, content, mode)
	}
	if err := x.topDir(hdr.Name, false, 0); err != nil {
		return err
	}
	if err := x.parents(hdr.Name, rel); err != nil {
		return err
	}
	name := filepath.FromSlash(rel)
	fail := entryError(hdr.Name)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := x.dir(name, hdr.Name, false); err != nil {
			return err
		}
		delete(x.files, rel)
		x.dirs[rel] = true
		return fail(chmodDir(x.root, name, mode))
	case tar.TypeReg:
		if err := x.clear(x.root, name, hdr.Name); err != nil {
			return err
		}
		x.files[rel] = true
		return fail(writeFile(x.root, name, mode, content))
	case tar.TypeSymlink:
		if err := x.clear(x.root, name, hdr.Name); err != nil {
			return err
		}
		delete(x.files, rel)
		return fail(os.Symlink(hdr.Linkname, filepath.Join(x.dst, name)))
	default: // tar.TypeLink
		target, err := x.local(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link %q: %w", hdr.Name, err)
		}
		if !x.files[target] {
			return fmt.Errorf("hard link %q to %q: not a file this copy extracted", hdr.Name, hdr.Linkname)
		}
		if st, err := x.root.Lstat(filepath.FromSlash(target)); err != nil || !st.Mode().IsRegular() {
			return fmt.Errorf("hard link %q to %q: not a regular file", hdr.Name, hdr.Linkname)
		}
		if target == rel {
			return nil // a link to itself: it is there
		}
		if err := x.clear(x.root, name, hdr.Name); err != nil {
			return err
		}
		x.files[rel] = true
		return fail(os.Link(filepath.Join(x.dst, filepath.FromSlash(target)), filepath.Join(x.dst, name)))
	}
}

// topEntry extracts the top-level entry: dst itself.
func (x *extractor) topEntry(hdr *tar.Header, content io.Reader, mode fs.FileMode) error {
	if hdr.Typeflag == tar.TypeDir {
		return x.topDir(hdr.Name, true, mode)
	}
	if x.root != nil {
		return fmt.Errorf("archive entry %q: %s is a directory", hdr.Name, x.dst)
	}
	if err := x.clear(x.parent, x.base, hdr.Name); err != nil {
		return err
	}
	fail := entryError(hdr.Name)
	switch hdr.Typeflag {
	case tar.TypeReg:
		return fail(writeFile(x.parent, x.base, mode, content))
	case tar.TypeSymlink:
		return fail(os.Symlink(hdr.Linkname, x.dst))
	default: // a hard link at the top: to nothing this copy extracted
		return fmt.Errorf("hard link %q to %q: not a file this copy extracted", hdr.Name, hdr.Linkname)
	}
}

// topDir makes dst a directory (when it is not one yet) and opens it as the
// root of every entry below it; with chmod it also gives it mode. An entry
// below the top-level name makes dst a directory implicitly.
func (x *extractor) topDir(name string, chmod bool, mode fs.FileMode) error {
	if x.root == nil {
		st, err := x.parent.Lstat(x.base)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.parent.Mkdir(x.base, 0o755); err != nil {
				return fmt.Errorf("archive entry %q: %w", name, err)
			}
		case err != nil:
			return fmt.Errorf("archive entry %q: %w", name, err)
		case st.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("archive entry %q: %s is a symbolic link: nothing is extracted through it", name, x.dst)
		case !st.IsDir():
			return fmt.Errorf("archive entry %q: %s is not a directory", name, x.dst)
		}
		if x.root, err = x.parent.OpenRoot(x.base); err != nil {
			return fmt.Errorf("archive entry %q: %w", name, err)
		}
	}
	if !chmod {
		return nil
	}
	if err := chmodDir(x.root, ".", mode); err != nil {
		return fmt.Errorf("archive entry %q: %w", name, err)
	}
	return nil
}

// parents makes sure every directory on the way to rel below dst is a real
// directory — made when missing, never a symbolic link.
func (x *extractor) parents(name, rel string) error {
	dir := path.Dir(rel)
	if dir == "." || x.dirs[dir] {
		return nil
	}
	p := ""
	for _, part := range strings.Split(dir, "/") {
		p = path.Join(p, part)
		if x.dirs[p] {
			continue
		}
		if err := x.dir(filepath.FromSlash(p), name, true); err != nil {
			return err
		}
		x.dirs[p] = true
	}
	return nil
}

// dir makes name below dst a directory: it is kept when it is one, made
// when missing, and a file or link there is replaced by one — but for a link
// on the way to another entry (onTheWay): that is refused, never followed.
func (x *extractor) dir(name, entry string, onTheWay bool) error {
	st, err := x.root.Lstat(name)
	switch {
	case err == nil && st.IsDir():
		return nil
	case err == nil:
		if onTheWay && st.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("archive entry %q goes through %q, a symbolic link: nothing is extracted through a link", entry, filepath.ToSlash(name))
		}
		if err := x.root.Remove(name); err != nil {
			return fmt.Errorf("archive entry %q: %w", entry, err)
		}
		delete(x.files, filepath.ToSlash(name))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("archive entry %q: %w", entry, err)
	}
	if err := x.root.Mkdir(name, 0o755); err != nil {
		return fmt.Errorf("archive entry %q: %w", entry, err)
	}
	return nil
}

// entryError returns a function that says which entry an error is about
// (nil stays nil).
func entryError(entry string) func(error) error {
	return func(err error) error {
		if err == nil {
			return nil
		}
		return fmt.Errorf("archive entry %q: %w", entry, err)
	}
}

// clear removes what is at name in r, unless it is a directory (an error):
// a new file or link never writes through what was there.
func (x *extractor) clear(r *os.Root, name, entry string) error {
	st, err := r.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("archive entry %q: %w", entry, err)
	case st.IsDir():
		return fmt.Errorf("archive entry %q: a directory is in the way", entry)
	}
	if err := r.Remove(name); err != nil {
		return fmt.Errorf("archive entry %q: %w", entry, err)
	}
	return nil
}

// writeFile makes a new regular file name in r (nothing may be there) with
// content and the mode bits given, whatever the umask.
func writeFile(r *os.Root, name string, mode fs.FileMode, content io.Reader) error {
	f, err := r.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, content)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// chmodDir gives the directory name in r mode, writable and searchable by
// its owner so that its entries can be extracted.
func chmodDir(r *os.Root, name string, mode fs.FileMode) error {
	f, err := r.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chmod(mode | 0o700)
}
