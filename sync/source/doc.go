// Package source fetches git repositories for homeostat: the revisions a
// Sync applies (Fetcher, with a per-Sync cache) and the commits a CI build
// runs (Clone, LsRemote).
//
// It speaks file:// and local paths (through the git CLI's upload-pack, as
// go-git does), HTTP(S) with basic auth or a bearer token, and SSH with a
// private key, always checking the server's host key against known_hosts.
// Credentials come from a Secret with Flux's keys (see AuthFromSecret) and
// never appear in errors, logs or printed values.
package source
