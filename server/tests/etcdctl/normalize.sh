#!/usr/bin/env bash
# Normalizes a run.sh transcript (stdin -> stdout), hiding only what must
# differ between two servers: ids, ports, timings, sizes, versions, Raft
# term/index and hash values of the store format.
# Usage: normalize.sh CLIENT_PORT PEER_PORT
CP=${1:?client port}; PP=${2:?peer port}
sed -E \
 -e "s#127\.0\.0\.1:$CP\b#127.0.0.1:CPORT#g" \
 -e "s#127\.0\.0\.1:$PP\b#127.0.0.1:PPORT#g" \
 -e 's#/tmp/tmp\.[A-Za-z0-9]+#/tmp/TMPDIR#g' \
 -e 's#"(cluster_id|member_id|leader|ID|id|lease)":[1-9][0-9]*#"\1":ID#g' \
 -e 's#"(ClusterID|MemberID|Leader|ID|Lease)" : [1-9][0-9]*#"\1" : ID#g' \
 -e 's#"(raft_term|raftTerm|raftIndex|raftAppliedIndex|raft_index|dbSize|dbSizeInUse|totalSize)":[0-9]+#"\1":N#g' \
 -e 's#"(RaftTerm|RaftIndex|RaftAppliedIndex|DBSize|DBSizeInUse)" : [0-9]+#"\1" : N#g' \
 -e 's#"version":"[0-9][^"]*"#"version":"VER"#g; s#"Version" : "[^"]*"#"Version" : "VER"#g' \
 -e 's#\b(myelection|mylock)/[0-9a-f]{1,16}\b#\1/HEXID#g' \
 -e 's#\b[0-9a-f]{15,16}\b#HEXID#g' \
 -e 's#"took":"[^"]*"#"took":"T"#g; s#took = [0-9.]+[µmn]?s#took = T#g' \
 -e 's#"ts":("[^"]*"|[0-9.e+]+)#"ts":TS#g' \
 -e 's#client-[0-9a-f-]{36}#client-UUID#g' \
 -e 's#^(OUT: (http://)?127.0.0.1:CPORT), HEXID, [^,]*, [^,]*, #\1, HEXID, VER, SIZE, #' \
 -e 's#^(OUT: (http://)?127.0.0.1:CPORT, HEXID, VER, SIZE, [a-z]+, [a-z]+), [0-9]+, [0-9]+, [0-9]+,#\1, TERM, IDX, AIDX,#' \
 -e '/^ERR: /s#0x[0-9a-f]+\??#0xX#g' \
 -e '/^OUT: [+|]/{s# +# #g; s#-+#-#g; s#[0-9.]+[µmn]?s \|#T |#; s#\| [0-9.]+ [kMG]?B \|#| SIZE |#; s#\| 3\.[0-9.]+ \|#| VER |#}' \
 -e '/^OUT: \|/{s#\| (true|false) \| (true|false) \| [0-9]+ \| [0-9]+ \| [0-9]+ \|#| \1 | \2 | TERM | IDX | AIDX |#}' \
 -e 's#("fetched snapshot".*"size":)"[^"]*","took":[0-9.e-]+#\1"SIZE","took":T#' \
 -e 's#remaining\([0-9]+s\)#remaining(Ns)#; s#"ttl":[1-9][0-9]*#"ttl":N#g'
