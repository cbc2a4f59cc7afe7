package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/labels"
)

// imageView is an image heph built (labelled heph.build), as ps and prune
// show it.
type imageView struct {
	ID      string    `json:"id"`
	Tags    []string  `json:"tags"`
	Source  string    `json:"source,omitempty"` // the context directory or Go package
	Size    int64     `json:"size"`
	Created time.Time `json:"created,omitzero"`
	// AgeSeconds is absent when the creation time is unknown.
	AgeSeconds *int64 `json:"age_seconds,omitempty"`
	// InUse is true when a container (of any kind, running or not) was
	// created from it: prune leaves it.
	InUse bool `json:"in_use"`
}

// builtImages lists the images labelled heph.build, by tag, each marked in
// use when a container was created from it, their ages at now.
func builtImages(ctx context.Context, api engine.API, now time.Time) ([]imageView, error) {
	imgs, err := api.ImageList(ctx, engine.Filter{}.Add("label", labels.Build))
	if err != nil {
		return nil, engine.Op("list images built by heph", "", err, nil)
	}
	cs, err := api.ContainerList(ctx, nil)
	if err != nil {
		return nil, engine.Op("list containers", "", err, nil)
	}
	used := map[string]bool{}
	for _, c := range cs {
		used[c.ImageID], used[c.Image] = true, true
	}
	out := make([]imageView, 0, len(imgs))
	for _, img := range imgs {
		v := imageView{ID: img.ID, Tags: append([]string{}, img.RepoTags...), Source: img.Labels[labels.BuildSource], Size: img.Size, InUse: used[img.ID]}
		if img.Created.Unix() > 0 {
			v.Created = img.Created.UTC()
			a := int64(now.Sub(v.Created).Seconds())
			v.AgeSeconds = &a
		}
		sort.Strings(v.Tags)
		for _, t := range v.Tags {
			v.InUse = v.InUse || used[t]
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return imageName(out[i]) < imageName(out[j]) })
	return out, nil
}

// imageName is an image's first tag, else its short ID.
func imageName(v imageView) string {
	if len(v.Tags) > 0 {
		return v.Tags[0]
	}
	return strings.TrimPrefix(v.ID, "sha256:")[:min(12, len(strings.TrimPrefix(v.ID, "sha256:")))]
}

// removeImages removes the images not in use (force: every tag) and returns
// what it removed and what it left because a container uses it; a removal
// that fails is an error naming the image.
func removeImages(ctx context.Context, api engine.API, imgs []imageView) (removed, kept []imageView, err error) {
	var errs []error
	for _, v := range imgs {
		if v.InUse {
			kept = append(kept, v)
			continue
		}
		switch err := api.ImageRemove(ctx, v.ID); {
		case err == nil:
			removed = append(removed, v)
		case errors.Is(err, engine.ErrNotFound):
		default:
			errs = append(errs, engine.Op("remove image", imageName(v), err, nil))
		}
	}
	return removed, kept, errors.Join(errs...)
}

// megabytes formats a size as ps does: "8.1 MB".
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

func totalSize(imgs []imageView) int64 {
	var n int64
	for _, v := range imgs {
		n += v.Size
	}
	return n
}

// writeImages writes images as aligned columns.
func writeImages(w io.Writer, imgs []imageView) {
	var buf bytes.Buffer
	defer func() { writeTrimmed(w, buf.Bytes()) }()
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tSOURCE\tSIZE\tAGE\tIN USE")
	for _, v := range imgs {
		inUse := "no"
		if v.InUse {
			inUse = "yes"
		}
		src := v.Source
		if src == "" {
			src = "-"
		}
		ageText := age(0, false)
		if v.AgeSeconds != nil {
			ageText = age(*v.AgeSeconds, true)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ellipsis(imageName(v), 40), ellipsis(src, 40), megabytes(v.Size), ageText, inUse)
	}
	_ = tw.Flush()
}
