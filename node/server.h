/* node/ — the Flotilla server daemon.
 *
 * One libuv loop runs the Raft instance (raft/rg_repl), the store and the
 * HTTP/JSON API. Writes sent to a follower are forwarded to the leader; reads
 * are linearizable (a barrier on the leader) unless the client asks ?stale.
 * A new server joins with --join, which asks an existing server to add it. */
#ifndef FL_NODE_SERVER_H
#define FL_NODE_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "raft/rg_repl.h"
#include "tls/creds.h"

#define NODE_MAX_PEERS 16

struct node_config {
    uint64_t id;            /* Raft id (> 0) */
    char name[64];          /* node name: the one in the certificate (default) */
    char data_dir[4096];    /* DATA/store (LMDB) and DATA/raft (log) */
    char raft_addr[128];    /* host:port for Raft */
    char api_addr[128];     /* host:port for the HTTP API */
    char agent_addr[128];   /* host:port where agents connect */
    char blob_addr[128];    /* host:port of the package blob link (node/blobs.h) */
    unsigned lost_after_ms; /* an agent silent this long is committed lost */
    unsigned heartbeat_ms;  /* agents' heartbeat period */
    int no_agent;           /* do not run the embedded agent */
    int placement_pack;     /* 1: pack units onto the fullest nodes; 0: spread (default) */
    unsigned n_labels;
    char labels[32][128]; /* labels of this server's node ("k=v") */
    int bootstrap;        /* bootstrap a new cluster with `peers` */
    unsigned n_peers;
    struct rg_peer peers[NODE_MAX_PEERS];
    char join[128]; /* API address of a server of the cluster to join */
    int join_role;  /* RAFT_VOTER or RAFT_STANDBY */
    unsigned snapshot_threshold;
    unsigned snapshot_trailing;
    size_t store_size;         /* LMDB map size in bytes */
    size_t max_body;           /* HTTP request body limit */
    unsigned max_conns_per_ip; /* HTTP connections from one address */
    unsigned node_cap;         /* running-unit cap recorded for this server's node */
    uint64_t min_free_disk;    /* refuse writes when the data disk has less free */
    unsigned char key[32];     /* the servers' secret (common/key.h): sealing, internal calls */
    struct tls_creds *creds;   /* CA, certificate and key of every link (tls/creds.h), required */
    char tls_ca[4096];         /* the files creds came from: the embedded agent's, for deploys */
    char tls_cert[4096];
    char tls_key[4096];
    char apps_dir[4096]; /* the embedded agent's default application roots ("": the default) */
    int raft_plaintext;  /* test builds, measurement only: Raft without encryption */
    int require_agent_approval; /* new agents wait for `flotilla agent approve` */
};

void node_config_defaults(struct node_config *c);

/* Run a server until SIGINT/SIGTERM. Returns a process exit status. */
int node_server_run(const struct node_config *c);

#endif
