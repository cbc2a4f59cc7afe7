// Package shared keeps heph's shared containers (ContainerRequest.Shared):
// one container per content key, for every test, package and process on
// this machine that asks for an equal request, created once, joined by the
// others, held by leases, and removed an idle time after its last holder
// ended.
//
//   - Identity: Spec.Key hashes the normalised request, with the image's
//     content ID; the container is named Name(service, key) and labelled
//     heph.shared=<key>, heph.managed, heph.host, heph.service, heph.created
//     — never heph.session nor heph.pid, so no session's teardown, watchdog
//     or prune --stale removes it.
//   - Exactly one: Take.Run looks under the key's shared lock and creates or
//     replaces under its exclusive lock (Store); the daemon's refusal of a
//     second container of the same name covers processes that do not share
//     the Store.
//   - Leases: Holder.Hold writes a lease file that the process keeps locked
//     for its lifetime; the kernel drops the lock however the process ends,
//     so liveness needs no pid, pid namespace, boot id or start time. The
//     process tells its watchdog "lease <key>"; once the process has ended,
//     the watchdog runs Expiry.AfterParent: it waits out the idle time and
//     removes the container unless a live holder holds it. Sweep, run once
//     per process, removes what a killed watchdog left; heph prune --shared
//     removes unheld ones at once.
package shared
