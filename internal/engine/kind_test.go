package engine_test

import (
	"testing"

	"github.com/heph-go/heph/internal/engine"
	"github.com/stretchr/testify/require"
)

func TestKind(t *testing.T) {
	require.Equal(t, engine.KindPodman, engine.Kind(engine.Version{Components: []string{"Podman Engine", "Conmon"}}))
	require.Equal(t, engine.KindDocker, engine.Kind(engine.Version{Product: "Docker Engine - Community", Components: []string{"Engine", "containerd"}}))
	require.Equal(t, engine.KindDocker, engine.Kind(engine.Version{}), "an engine that says nothing is taken for Docker")
}

func TestConnection(t *testing.T) {
	for _, tc := range []struct {
		ep        engine.Endpoint
		how, warn string
	}{
		{engine.Endpoint{Host: "unix:///var/run/docker.sock"}, "unix socket /var/run/docker.sock", ""},
		{engine.Endpoint{Host: "ssh://me@box:2222"}, "ssh to me@box:2222 (ssh … docker system dial-stdio; ssh's config, keys and known_hosts)", ""},
		{engine.Endpoint{Host: "tcp://127.0.0.1:2375"}, "tcp to 127.0.0.1:2375 without TLS", ""},
		{engine.Endpoint{Host: "tcp://box:2375"}, "tcp to box:2375 without TLS", "unencrypted and unauthenticated"},
		{engine.Endpoint{Host: "tcp://box:2376", TLS: true, TLSVerify: true, CAFile: "/c/ca.pem", CertFile: "/c/cert.pem"},
			"tcp+TLS to box:2376, server verified against /c/ca.pem, client certificate /c/cert.pem", ""},
		{engine.Endpoint{Host: "tcp://box:2376", TLS: true}, "tcp+TLS to box:2376, server NOT verified, no client certificate", "without verification"},
	} {
		how, warn := tc.ep.Connection()
		require.Equal(t, tc.how, how)
		if tc.warn == "" {
			require.Empty(t, warn)
		} else {
			require.Contains(t, warn, tc.warn)
		}
	}
}

func TestHasLabelsIsAnAnd(t *testing.T) {
	l := map[string]string{"heph.managed": "true", "heph.session": "a"}
	require.True(t, engine.HasLabels(l, []string{"heph.managed=true", "heph.session=a"}))
	require.True(t, engine.HasLabels(l, []string{"heph.session"}))
	require.True(t, engine.HasLabels(l, nil))
	require.False(t, engine.HasLabels(l, []string{"heph.managed=true", "heph.session=b"}), "Podman ORs them: heph must not")
	require.False(t, engine.HasLabels(l, []string{"heph.shared"}))
}

func TestHealthSubscription(t *testing.T) {
	id, ok := engine.HealthSubscription(engine.Filter{}.Add("type", "container").Add("container", "c1").Add("event", "health_status"))
	require.True(t, ok)
	require.Equal(t, "c1", id)
	_, ok = engine.HealthSubscription(engine.Filter{}.Add("container", "c1").Add("event", "die"))
	require.False(t, ok, "not a health subscription")
	_, ok = engine.HealthSubscription(engine.Filter{}.Add("container", "c1", "c2").Add("event", "health_status"))
	require.False(t, ok, "one container only")
}
