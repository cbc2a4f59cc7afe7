package engine_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/heph-go/heph/internal/engine"
	"github.com/heph-go/heph/internal/enginetest"
)

func TestNetworkCreate(t *testing.T) {
	srv, c := newClient(t)
	id, err := c.NetworkCreate(t.Context(), engine.NetworkSpec{
		Name: "heph-net-1a2b3c4d", Labels: map[string]string{"heph.managed": "true"}, Internal: true,
		Subnet: netip.MustParsePrefix("10.231.7.0/24"), Gateway: netip.MustParseAddr("10.231.7.1"),
	})
	require.NoError(t, err)
	require.Equal(t, netID, id)
	body := only(t, srv, "POST /networks/create").Body
	for key, want := range map[string]string{
		"Name": `"heph-net-1a2b3c4d"`, "Driver": `"bridge"`, "Internal": `true`, "Labels": `{"heph.managed":"true"}`,
	} {
		require.JSONEq(t, want, field(t, body, key), key)
	}
	require.JSONEq(t, `"default"`, field(t, body, "IPAM", "Driver"))
	require.JSONEq(t, `[{"Subnet":"10.231.7.0/24","Gateway":"10.231.7.1"}]`, field(t, body, "IPAM", "Config"))
}

func TestNetworkCreateFromTheDefaultPools(t *testing.T) {
	srv, c := newClient(t)
	_, err := c.NetworkCreate(t.Context(), engine.NetworkSpec{Name: "n"})
	require.NoError(t, err)
	body := srv.Find("POST /networks/create")[0].Body
	require.Equal(t, "null", field(t, body, "IPAM"), "no subnet: the daemon picks one")
	require.Contains(t, []string{"null", "false"}, field(t, body, "Internal"))

	_, err = c.NetworkCreate(t.Context(), engine.NetworkSpec{Name: "n", Subnet: netip.MustParsePrefix("10.9.0.0/16")})
	require.NoError(t, err)
	body = srv.Find("POST /networks/create")[1].Body
	require.JSONEq(t, `[{"Subnet":"10.9.0.0/16"}]`, field(t, body, "IPAM", "Config"), "no gateway: the daemon's choice")
}

func TestNetworkCreateErrors(t *testing.T) {
	srv, c := newClient(t)
	srv.Handle("POST /networks/create", enginetest.Error(409, "network with name n already exists"))
	_, err := c.NetworkCreate(t.Context(), engine.NetworkSpec{Name: "n"})
	require.ErrorIs(t, err, engine.ErrConflict)
	srv.Handle("POST /networks/create", enginetest.Error(500, "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"))
	_, err = c.NetworkCreate(t.Context(), engine.NetworkSpec{Name: "n"})
	require.ErrorContains(t, err, "non-overlapping IPv4 address pool")
}

func TestNetworkRemove(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.NetworkRemove(t.Context(), "heph-record-net"))
	require.Equal(t, "/networks/heph-record-net", only(t, srv, "DELETE /networks/{id}").Path)

	srv.Handle("DELETE /networks/{id}", enginetest.Recorded("error-network-in-use"))
	err := c.NetworkRemove(t.Context(), "heph-record-net")
	require.ErrorIs(t, err, engine.ErrConflict, "the daemon's 403 for a network with endpoints")
	require.ErrorContains(t, err, "has active endpoints")

	srv.Handle("DELETE /networks/{id}", enginetest.Recorded("error-network-not-found"))
	require.ErrorIs(t, c.NetworkRemove(t.Context(), "heph-record-nope"), engine.ErrNotFound)
}

func TestNetworkConnectAndDisconnect(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.NetworkConnect(t.Context(), "heph-record-net", exitID, []string{"exit", "quit"}))
	r := only(t, srv, "POST /networks/{id}/connect")
	require.Equal(t, "/networks/heph-record-net/connect", r.Path)
	require.JSONEq(t, `"`+exitID+`"`, field(t, r.Body, "Container"))
	require.JSONEq(t, `["exit","quit"]`, field(t, r.Body, "EndpointConfig", "Aliases"))

	require.NoError(t, c.NetworkDisconnect(t.Context(), "heph-record-net", exitID))
	r = only(t, srv, "POST /networks/{id}/disconnect")
	require.Equal(t, "/networks/heph-record-net/disconnect", r.Path)
	require.JSONEq(t, `"`+exitID+`"`, field(t, r.Body, "Container"))
	require.Equal(t, "true", field(t, r.Body, "Force"))

	srv.Handle("POST /networks/{id}/connect", enginetest.Error(409, "endpoint with name x already exists in network n"))
	require.ErrorIs(t, c.NetworkConnect(t.Context(), "n", "x", nil), engine.ErrConflict)
	srv.Handle("POST /networks/{id}/disconnect", enginetest.Error(404, "network n not found"))
	require.ErrorIs(t, c.NetworkDisconnect(t.Context(), "n", "x"), engine.ErrNotFound)
}

func TestNetworkList(t *testing.T) {
	srv, c := newClient(t)
	got, err := c.NetworkList(t.Context(), engine.Filter{}.Add("label", "heph.test=record"))
	require.NoError(t, err)
	require.Equal(t, []engine.Network{{
		ID: netID, Name: "heph-record-net", Driver: "bridge", Labels: map[string]string{"heph.test": "record"},
		Created: ts("2026-11-30T00:37:25.088839076Z"),
		Subnets: []engine.Subnet{{Prefix: netip.MustParsePrefix("10.231.7.0/24"), Gateway: netip.MustParseAddr("10.231.7.1")}},
	}}, got)
	require.Equal(t, map[string]map[string]bool{"label": {"heph.test=record": true}}, filtersOf(t, only(t, srv, "GET /networks")))
}

func TestVolumeList(t *testing.T) {
	srv, c := newClient(t)
	got, err := c.VolumeList(t.Context(), engine.Filter{}.Add("label", "heph.test=record"))
	require.NoError(t, err)
	require.Equal(t, []engine.Volume{{
		Name: "heph-record-vol", Labels: map[string]string{"heph.test": "record"},
		Created: time.Date(2026, 11, 30, 0, 37, 28, 0, time.UTC),
	}}, got)
	require.Equal(t, map[string]map[string]bool{"label": {"heph.test=record": true}}, filtersOf(t, only(t, srv, "GET /volumes")))
}

func TestVolumeRemove(t *testing.T) {
	srv, c := newClient(t)
	require.NoError(t, c.VolumeRemove(t.Context(), "heph-record-vol"))
	r := only(t, srv, "DELETE /volumes/{name}")
	require.Equal(t, "/volumes/heph-record-vol", r.Path)
	require.Equal(t, "1", r.Query.Get("force"))

	srv.Handle("DELETE /volumes/{name}", enginetest.Recorded("error-volume-in-use"))
	err := c.VolumeRemove(t.Context(), "heph-record-vol")
	require.ErrorIs(t, err, engine.ErrConflict)
	require.ErrorContains(t, err, "volume is in use")
	srv.Handle("DELETE /volumes/{name}", enginetest.Error(404, "get nope: no such volume"))
	require.ErrorIs(t, c.VolumeRemove(t.Context(), "nope"), engine.ErrNotFound)
}
