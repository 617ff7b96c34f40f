#!/usr/bin/env bash
# Drives a fresh etcd-compatible server with etcdctl and prints every command
# with its output and exit status. tests/etcdctl_compat.rs runs it against
# synod and against a real etcd and compares the two transcripts.
# Usage: run.sh ENDPOINT   (the server must be fresh)
EP=${1:?endpoint}
export ETCDCTL_API=3
E="etcdctl --endpoints=$EP"
T=$(mktemp -d)
n=0
run() {  # run "description" cmd...   (stdin passed through)
  n=$((n+1))
  echo "### [$n] $*"
  "$@" >$T/o 2>$T/e; rc=$?
  sed 's/^/OUT: /' $T/o
  sed 's/^/ERR: /' $T/e
  echo "RC: $rc"
}
runin() { # runin "stdin-text" cmd...
  local input=$1; shift
  n=$((n+1))
  echo "### [$n] $* <<< $(printf '%s' "$input" | tr '\n' '|')"
  printf '%s' "$input" | "$@" >$T/o 2>$T/e; rc=$?
  sed 's/^/OUT: /' $T/o
  sed 's/^/ERR: /' $T/e
  echo "RC: $rc"
}

echo "===== fresh store"
run $E get foo -w json
run $E get '' --prefix -w json
run $E get foo --rev=1 -w json
run $E endpoint hashkv -w json
run etcdctl --endpoints=${EP#http://} endpoint hashkv -w json
run etcdctl --endpoints=${EP#http://} endpoint status -w json
run $E member list -w json
echo "===== basic put/get"
run $E get foo
run $E put foo bar
run $E put foo bar2
run $E put foo1 v1
run $E put foo2 v2
run $E put fop zz
run $E put a 1
run $E put b 2
run $E put zzz last
run $E get foo
run $E get foo -w json
run $E get foo -w fields
run $E get foo -w simple
run $E get nosuchkey -w json
run $E get nosuchkey -w fields
run $E get foo --prefix
run $E get foo --prefix -w json
run $E get foo fop
run $E get foo fop -w json
run $E get fo --from-key
run $E get '' --from-key
run $E get '' --prefix
run $E get foo --rev=2
run $E get foo --rev=3 -w json
run $E get foo --rev=1
run $E get foo --prefix --limit=2
run $E get foo --prefix --limit=2 -w json
run $E get foo --prefix --limit=0
for s in KEY CREATE MODIFY VERSION VALUE; do
  for o in ASCEND DESCEND; do
    run $E get '' --prefix --sort-by=$s --order=$o
  done
done
run $E get '' --prefix --sort-by=VALUE
run $E get '' --prefix --order=DESCEND
run $E get '' --prefix --order=DESCEND --limit=3 -w json
run $E get '' --prefix --sort-by=MODIFY --order=DESCEND --limit=2
run $E get foo --prefix --keys-only
run $E get foo --prefix --keys-only -w json
run $E get foo --prefix --print-value-only
run $E get foo --prefix --print-value-only --keys-only
run $E get foo --consistency=s
run $E get foo --consistency=s -w json
run $E get foo --consistency=l
run $E get foo --prefix -w fields
run $E get foo --prefix --limit=1 -w fields
run $E get foo --hex
run $E get foo -w json --hex

echo "===== put variants"
run $E put foo bar3 --prev-kv
run $E put foo bar4 --prev-kv -w json
run $E put newkey nv --prev-kv
run $E put newkey2 nv --prev-kv -w json
run $E put foo --ignore-value
run $E put foo newval --ignore-value
run $E put foo --ignore-value -w json
run $E get foo -w json
run $E put foo bar5 --ignore-lease
run $E put missing --ignore-value
run $E put missing2 val --ignore-lease
run $E put missing3 --ignore-value --ignore-lease
run $E put foo -w json
run $E put foo
run $E put
run $E put '' val
run $E get ''
run $E del ''
run $E put foo bar --lease=1234abcd
run $E put foo bar --lease=zz
run $E get foo -w json

echo "===== del"
run $E put d1 1
run $E put d2 2
run $E put d3 3
run $E put e1 1
run $E del d1
run $E del d1
run $E del nosuch -w json
run $E del d2 --prev-kv
run $E del d3 --prev-kv -w json
run $E put d4 4
run $E put d5 5
run $E put d6 6
run $E del d --prefix
run $E put dd1 1
run $E put dd2 2
run $E del dd --prefix --prev-kv -w json
run $E put x1 1
run $E put x2 2
run $E del x1 --from-key
run $E get '' --from-key --keys-only
run $E del d1 d9
run $E put r1 1
run $E put r2 2
run $E put r3 3
run $E del r1 r3 -w json
run $E get r --prefix
run $E del '' --prefix --prev-kv
run $E get '' --prefix

echo "===== txn"
run $E put t1 v1
run $E put t2 v2
run $E put t2 v22
runin $'value("t1") = "v1"\n\nput t3 yes\nget t1\n\nput t3 no\n\n' $E txn
runin $'value("t1") = "nope"\n\nput t3 yes\n\nput t3 no\nget t3\n\n' $E txn
runin $'version("t2") = "2"\n\nget t2\n\ndel t2\n\n' $E txn
runin $'version("t2") > "1"\n\nget t2\n\n\n' $E txn -w json
runin $'create("t1") < "1000"\nmod("t2") > "0"\n\nput t4 v4\ndel t3\nget t --prefix\n\nget t1\n\n' $E txn
runin $'create("t1") = "0"\n\nput t5 x\n\nget t1\nget nosuch\n\n' $E txn -w json
runin $'mod("t2") != "0"\n\nput t5 x --prev-kv\n\n\n' $E txn
runin $'value("t1") < "v2"\n\nput t6 y\n\n\n' $E txn -w json
runin $'value("nokey") = "x"\n\n\nput t7 z\n\n' $E txn -w json
runin $'\nput t8 a\nget t8\n\n\n' $E txn
runin $'\n\nput t9 a\n\n' $E txn
runin $'value("t1") = "v1"\n\nput t10 a\n\n\n' $E txn -w fields
runin $'value("t1") = "v1"\n\nput t10 a\n\n\n' $E txn -w simple
runin $'value("t1") = "v1"\n\nget t --prefix --limit=1 --sort-by=KEY --order=DESCEND\n\n\n' $E txn -w json
runin $'lease("t1") = "0"\n\nput t11 a\n\n\n' $E txn
runin $'bogus("t1") = "0"\n\nput t11 a\n\n\n' $E txn
runin $'value("t1") = "v1"\n\nbogus t11 a\n\n\n' $E txn
runin $'\nput dup 1\nput dup 2\n\n\n' $E txn
runin $'\nput dup 1\ndel dup\n\n\n' $E txn
runin $'\nput dup 1\nget dup\n\n\n' $E txn
runin $'\ndel dup\ndel dup\n\n\n' $E txn
runin $'\nput dup 1\n\nput dup 2\nput dup 3\n\n' $E txn
runin $'\ndel dup --prefix\nput dupx 1\n\n\n' $E txn
ops=""; for i in $(seq 1 129); do ops+="put big$i v"$'\n'; done
runin $'\n'"$ops"$'\n\n' $E txn
ops=""; for i in $(seq 1 128); do ops+="put big$i v"$'\n'; done
runin $'\n'"$ops"$'\n\n' $E txn -w json
echo "big keys: $($E get big --prefix --keys-only | grep -c big)"
ops=""; for i in $(seq 1 129); do ops+="value(\"big$i\") = \"v\""$'\n'; done
runin "$ops"$'\n\n\n' $E txn
run $E get t --prefix -w json

echo "===== error cases"
head -c $((1536*1024+1)) /dev/zero | tr '\0' 'a' > $T/bigval
head -c $((1536*1024 - 100)) /dev/zero | tr '\0' 'a' > $T/okval
run $E put bigv < $T/bigval
run $E put okv < $T/okval
run $E get okv --keys-only
run $E get foo --rev=100000
run $E get foo --rev=100000 -w json
run $E get foo --rev=-1
run $E get foo --limit=-1
run $E get foo --sort-by=BOGUS
run $E get foo --order=BOGUS
run $E get foo --consistency=x
run $E get
run $E del
run $E get '' 

echo "===== watch"
REV=$($E get foo -w json | sed 's/.*"revision":\([0-9]*\).*/\1/')
echo "current rev captured"
(timeout 4 $E watch w --prefix > $T/w1.o 2>$T/w1.e; echo "RC: $?" >> $T/w1.o) &
(timeout 4 $E watch w1 -w json > $T/w2.o 2>$T/w2.e; echo "RC: $?" >> $T/w2.o) &
(timeout 4 $E watch w1 w3 > $T/w3.o 2>$T/w3.e; echo "RC: $?" >> $T/w3.o) &
(timeout 4 $E watch w --prefix --prev-kv > $T/w4.o 2>$T/w4.e; echo "RC: $?" >> $T/w4.o) &
sleep 1.5
$E put w1 a >/dev/null
$E put w2 b >/dev/null
$E put w1 c >/dev/null
$E del w2 >/dev/null
$E put x9 nope >/dev/null
$E del w --prefix >/dev/null
runin $'\nput w1 t1\nput w2 t2\n\n\n' $E txn
wait
for i in 1 2 3 4; do echo "### watch bg $i"; sed 's/^/OUT: /' $T/w$i.o; sed 's/^/ERR: /' $T/w$i.e; done
run timeout 2 $E watch w --prefix --rev=1
run timeout 2 $E watch w1 --rev=$REV
run timeout 2 $E watch w1 --rev=$REV -w json
run timeout 2 $E watch w1 --rev=$REV --prev-kv -w json
run timeout 2 $E watch w --prefix --rev=$REV -w fields
run timeout 2 $E watch '' --prefix --rev=$((REV+3))
run timeout 2 $E watch w1 --rev=$((REV+1000))
run timeout 2 $E watch
# (watch -i is left out: whether events print before etcdctl reads EOF is a race)
run timeout 2 $E watch --prefix w --rev=$REV -- echo hi

echo "===== lease"
LRESP=$($E lease grant 100)
ID=$(echo "$LRESP" | awk '{print $2}')
echo "grant: $(echo "$LRESP" | sed "s/$ID/LEASEID/")"
run $E lease grant 50 -w json
LRESP0=$($E lease grant 0); ID0=$(echo "$LRESP0" | awk '{print $2}')
echo "grant 0: $(echo "$LRESP0" | sed "s/$ID0/LEASEID/")"
run $E lease revoke $ID0
run $E lease grant -5
run $E lease grant abc
run $E put lk1 v --lease=$ID
run $E get lk1 -w json
run $E lease timetolive $ID
run $E lease timetolive $ID --keys
run $E lease timetolive $ID --keys -w json
# (only one key attached above: etcd orders attached keys by Go map iteration, i.e. randomly)
run $E put lk2 v --lease=$ID
run $E lease timetolive $ID -w json
run $E lease keep-alive --once $ID
run $E lease keep-alive --once $ID -w json
run $E lease list
run $E lease list -w json
run $E put lk1 v2 --ignore-lease
run $E get lk1 -w json
run $E put lk3 v --ignore-lease
run $E lease timetolive 1234abcd
run $E lease timetolive 1234abcd --keys
run $E lease timetolive 1234abcd -w json
run $E lease keep-alive --once 1234abcd
run $E lease revoke 1234abcd
run $E lease revoke $ID
run $E lease revoke $ID
run $E get lk --prefix
run $E lease timetolive $ID
run $E lease timetolive $ID -w json
run $E lease keep-alive --once $ID
run $E lease list
run $E lease revoke
run $E lease revoke zz
echo "### lease list order (etcd: ascending expiry)"
A=$($E lease grant 100 | awk '{print $2}'); B=$($E lease grant 10 | awk '{print $2}'); C=$($E lease grant 50 | awk '{print $2}')
for id in $($E lease list | tail -n +2); do $E lease timetolive $id | sed "s/$id/LEASE/; s/, remaining([0-9]*s)//"; done
for id in $A $B $C; do $E lease revoke $id >/dev/null; done

echo "===== compaction"
run $E put c1 a
run $E put c1 b
run $E put c1 c
CREV=$($E get c1 -w json | sed 's/.*"revision":\([0-9]*\).*/\1/')
run $E compaction $((CREV-1))
run $E get c1 --rev=$((CREV-2))
run $E get c1 --rev=$((CREV-2)) -w json
run $E get c1 --rev=$((CREV-1))
run $E get c1 --rev=$((CREV))
run $E compaction $((CREV-1))
run $E compaction $((CREV-2))
run $E compaction $((CREV+1000))
run $E compaction $((CREV)) --physical
run $E compaction 0
run $E compaction -1
run $E compaction abc
run timeout 2 $E watch c1 --rev=2
run timeout 2 $E watch c1 --rev=$CREV
runin $'\n\nget c1 --rev=1\n\n' $E txn

echo "===== cluster/maintenance"
run $E endpoint status -w json
run $E endpoint status
run $E endpoint status -w fields
run $E endpoint health
run $E endpoint health -w json
run $E endpoint hashkv -w json
run $E member list
run $E member list -w json
run $E member list -w fields
run $E alarm list
run $E alarm disarm
run $E snapshot save $T/snap.db
run $E get foo --prefix -w json

# (before the extras: their lock/election keys carry lease ids, which differ
# between servers and enter the KV hash)
echo "===== maintenance via scheme-less endpoint (sidesteps the :authority problem)"
E2="etcdctl --endpoints=${EP#http://}"
run $E2 endpoint status -w json
run $E2 endpoint status -w fields
run $E2 endpoint hashkv -w json
run $E2 defrag
run $E2 move-leader 1234
echo "===== extras"
run $E endpoint status -w table
run $E endpoint health -w table
run $E member list -w table
run $E defrag
run $E alarm list -w json
run timeout 3 $E lock mylock echo locked
run timeout 3 $E lock mylock --ttl=5 echo locked2
(timeout 4 $E elect myelection candidate1 > $T/el.o 2>$T/el.e; echo "RC: $?" >> $T/el.o) &
sleep 1.5
run timeout 2 $E elect -l myelection
wait
echo "### elect bg"; sed 's/^/OUT: /' $T/el.o; sed 's/^/ERR: /' $T/el.e
run $E get myelection --prefix --keys-only
run $E get mylock --prefix --keys-only
LRESP=$($E lease grant 30); ID2=$(echo "$LRESP" | awk '{print $2}')
run timeout 2 $E lease keep-alive $ID2
run $E lease revoke $ID2
run $E put afterrevoke v --lease=$ID2
run $E auth enable
run $E user get root
run $E user list
run $E role list
run $E put hx 'a b' 
run $E get hx --hex -w json
run $E get hx --hex
run $E get '' --prefix --keys-only --limit=2 --sort-by=CREATE --order=DESCEND
rm -rf $T
