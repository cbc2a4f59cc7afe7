package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// newHandler returns the routes listed in the package doc; /log prints to out.
func newHandler(out *lineWriter) http.Handler {
	mux := http.NewServeMux()
	text := func(w http.ResponseWriter, code int, body string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		text(w, http.StatusOK, "healthy")
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(r.PathValue("code"))
		if err != nil || code < 200 || code > 599 {
			text(w, http.StatusBadRequest, fmt.Sprintf("bad status code %q: want 200-599", r.PathValue("code")))
			return
		}
		text(w, code, fmt.Sprintf("%d %s", code, http.StatusText(code)))
	})
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		var b strings.Builder
		for _, kv := range env {
			b.WriteString(kv + "\n")
		}
		text(w, http.StatusOK, b.String())
	})
	mux.HandleFunc("/hostname", func(w http.ResponseWriter, r *http.Request) {
		host, err := os.Hostname()
		if err != nil {
			text(w, http.StatusInternalServerError, err.Error())
			return
		}
		text(w, http.StatusOK, host)
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for name, values := range r.Header {
			for _, v := range values {
				h.Add("X-Echo-"+name, v)
			}
		}
		h.Set("X-Echo-Method", r.Method)
		h.Set("X-Echo-Uri", r.RequestURI)
		h.Set("X-Echo-Host", r.Host)
		if ct := r.Header.Get("Content-Type"); ct != "" {
			h.Set("Content-Type", ct)
		} else {
			h.Set("Content-Type", "application/octet-stream")
		}
		w.WriteHeader(http.StatusOK)
		io.Copy(w, r.Body)
	})
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		timeout, ok := queryDuration(w, q.Get("timeout"), 5*time.Second)
		if !ok {
			return
		}
		target := q.Get("url")
		if target == "" {
			text(w, http.StatusBadRequest, "missing url parameter")
			return
		}
		resp, err := httpClient(timeout, q.Get("insecure") == "1").Get(target)
		if err != nil {
			w.Header().Set("X-Fetch-Error", "1")
			text(w, http.StatusBadGateway, fmt.Sprintf("fetch %s: %v", target, err))
			return
		}
		defer resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.Header().Set("X-Fetch-Status", strconv.Itoa(resp.StatusCode))
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	mux.HandleFunc("/dial", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		timeout, ok := queryDuration(w, q.Get("timeout"), 5*time.Second)
		if !ok {
			return
		}
		addr := q.Get("addr")
		if addr == "" {
			text(w, http.StatusBadRequest, "missing addr parameter")
			return
		}
		var d net.Dialer
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			text(w, http.StatusBadGateway, fmt.Sprintf("dial %s: %v", addr, err))
			return
		}
		conn.Close()
		text(w, http.StatusOK, "connected")
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		d, ok := queryDuration(w, r.URL.Query().Get("d"), time.Second)
		if !ok {
			return
		}
		if !sleepCtx(r.Context(), d) {
			return // client went away
		}
		text(w, http.StatusOK, "slept "+d.String())
	})
	mux.HandleFunc("/log", func(w http.ResponseWriter, r *http.Request) {
		out.printf("%s", r.URL.Query().Get("line"))
		text(w, http.StatusOK, "logged")
	})
	return mux
}

// queryDuration parses a non-negative duration parameter (def when empty); on a bad value it
// answers 400 and reports false.
func queryDuration(w http.ResponseWriter, v string, def time.Duration) (time.Duration, bool) {
	if v == "" {
		return def, true
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "bad duration %q", v)
		return 0, false
	}
	return d, true
}

// httpClient returns a client with its own transport (no proxy from the environment).
func httpClient(timeout time.Duration, insecure bool) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: insecure},
			DisableKeepAlives: true,
		},
	}
}

// selfSignedCert makes an ECDSA P-256 certificate, valid for a year, for localhost, the
// hostname, 127.0.0.1 and ::1. It is its own CA, so a test may trust it with a cert pool.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	names := []string{"localhost"}
	if host, err := os.Hostname(); err == nil && host != "" && host != "localhost" {
		names = append(names, host)
	}
	start := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "testapp"},
		NotBefore:             start,
		NotAfter:              start.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
