--TEST--
Synod\Txn: comparisons on value/version/create/mod revision/lease, then/else with Op::put/get/delete, TxnResult, errors
--SKIPIF--
<?php require __DIR__ . '/skipif.inc'; ?>
--FILE--
<?php
use Synod\Op;

$c = new Synod\Client(getenv('SYNOD_ENDPOINT'));
$p = 'phpt/txn/' . bin2hex(random_bytes(4)) . '/';
$c->put("{$p}a", 'm');
$c->put("{$p}a", 'm');
$a = $c->getKeyValue("{$p}a"); // version 2
$lease = $c->lease(30, keep_alive: false);
$c->put("{$p}l", 'leased', lease: $lease->id);

function branch(Synod\Txn $t): string
{
    return $t->commit()->succeeded ? 'then' : 'else';
}

echo "-- comparisons\n";
$cases = [
    "value = m" => $c->txn()->ifValue("{$p}a", '=', 'm'),
    "value = n" => $c->txn()->ifValue("{$p}a", '=', 'n'),
    "value != m" => $c->txn()->ifValue("{$p}a", '!=', 'm'),
    "value != z" => $c->txn()->ifValue("{$p}a", '!=', 'z'),
    "value < n" => $c->txn()->ifValue("{$p}a", '<', 'n'),
    "value < m" => $c->txn()->ifValue("{$p}a", '<', 'm'),
    "value > l" => $c->txn()->ifValue("{$p}a", '>', 'l'),
    "value > m" => $c->txn()->ifValue("{$p}a", '>', 'm'),
    "value of absent key = ''" => $c->txn()->ifValue("{$p}absent", '=', ''),
    "version = 2" => $c->txn()->ifVersion("{$p}a", '=', 2),
    "version != 2" => $c->txn()->ifVersion("{$p}a", '!=', 2),
    "version < 3" => $c->txn()->ifVersion("{$p}a", '<', 3),
    "version > 2" => $c->txn()->ifVersion("{$p}a", '>', 2),
    "version of absent key = 0" => $c->txn()->ifVersion("{$p}absent", '=', 0),
    "createRevision = its own" => $c->txn()->ifCreateRevision("{$p}a", '=', $a->createRevision),
    "createRevision != its own" => $c->txn()->ifCreateRevision("{$p}a", '!=', $a->createRevision),
    "createRevision < its own" => $c->txn()->ifCreateRevision("{$p}a", '<', $a->createRevision),
    "createRevision > its own - 1" => $c->txn()->ifCreateRevision("{$p}a", '>', $a->createRevision - 1),
    "createRevision of absent key = 0" => $c->txn()->ifCreateRevision("{$p}absent", '=', 0),
    "modRevision = its own" => $c->txn()->ifModRevision("{$p}a", '=', $a->modRevision),
    "modRevision != its own" => $c->txn()->ifModRevision("{$p}a", '!=', $a->modRevision),
    "modRevision < its own + 1" => $c->txn()->ifModRevision("{$p}a", '<', $a->modRevision + 1),
    "modRevision > its own" => $c->txn()->ifModRevision("{$p}a", '>', $a->modRevision),
    "lease = the lease" => $c->txn()->ifLease("{$p}l", '=', $lease->id),
    "lease != the lease" => $c->txn()->ifLease("{$p}l", '!=', $lease->id),
    "lease of unleased key = 0" => $c->txn()->ifLease("{$p}a", '=', 0),
    "lease of unleased key != 0" => $c->txn()->ifLease("{$p}a", '!=', 0),
    "'==' and '<>' are accepted too" => $c->txn()->ifValue("{$p}a", '==', 'm')->ifValue("{$p}a", '<>', 'z'),
    "all must hold" => $c->txn()->ifValue("{$p}a", '=', 'm')->ifVersion("{$p}a", '=', 1),
    "prefix: every key's version > 0" => $c->txn()->ifVersion($p, '>', 0, prefix: true),
    "prefix: every key's value = m" => $c->txn()->ifValue($p, '=', 'm', prefix: true),
];
foreach ($cases as $name => $t) {
    echo "$name: ", branch($t), "\n";
}

echo "-- then\n";
$r = $c->txn()
    ->ifValue("{$p}a", '=', 'm')
    ->then(
        Op::put("{$p}b", 'B'),
        Op::get($p, prefix: true),
        Op::get($p, prefix: true, limit: 1),
        Op::get("{$p}absent"),
        Op::delete("{$p}l"),
    )
    ->else(Op::put("{$p}never", 'x'))
    ->commit();
var_dump($r instanceof Synod\TxnResult, $r->succeeded, count($r->responses));
var_dump($r->responses[0] === $r->revision, $c->getKeyValue("{$p}b")->modRevision === $r->revision);
var_dump(array_map(fn($kv) => substr($kv->key, strlen($p)), $r->responses[1]));
var_dump(count($r->responses[2]), $r->responses[2][0]->value, $r->responses[3], $r->responses[4]);
var_dump($c->get("{$p}l"), $c->get("{$p}never"));

echo "-- else\n";
$r = $c->txn()
    ->ifValue("{$p}a", '!=', 'm')
    ->then(Op::put("{$p}never", 'x'))
    ->else(Op::get("{$p}a"), Op::put("{$p}c", 'C', lease: $lease->id), Op::delete("{$p}b"))
    ->else(Op::get("{$p}c"))
    ->commit();
var_dump($r->succeeded, count($r->responses));
var_dump($r->responses[0][0]->value, $r->responses[1] === $r->revision, $r->responses[2]);
var_dump($r->responses[3][0]->value, $r->responses[3][0]->lease === $lease->id);
var_dump($c->get("{$p}never"), $c->get("{$p}b"));
var_dump($r);

echo "-- delete prefix, empty txn\n";
$c->put("{$p}d/1", '1');
$c->put("{$p}d/2", '2');
$r = $c->txn()->then(Op::delete("{$p}d/", prefix: true), Op::get("{$p}d/", prefix: true))->commit();
var_dump($r->succeeded, $r->responses);
$r = $c->txn()->commit();
var_dump($r->succeeded, $r->responses, $r->revision > 0);
// The same key may appear in then and else.
$r = $c->txn()->ifVersion("{$p}a", '=', 0)->then(Op::put("{$p}s", 'then'))->else(Op::put("{$p}s", 'else'))->commit();
var_dump($r->succeeded, $c->get("{$p}s"));

echo "-- errors\n";
foreach (['<=', 'eq', '', '=>'] as $op) {
    try {
        $c->txn()->ifValue("{$p}a", $op, 'm');
    } catch (ValueError $e) {
        echo get_class($e), ': ', $e->getMessage(), "\n";
    }
}
try {
    $c->txn()->ifModRevision("{$p}a", '>=', 1);
} catch (ValueError $e) {
    echo get_class($e), "\n";
}
try {
    Op::get($p, prefix: true, limit: -1);
} catch (ValueError $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
$ops = [];
for ($i = 0; $i < 129; $i++) {
    $ops[] = Op::put("{$p}many/$i", 'x');
}
try {
    $c->txn()->then(...$ops)->commit();
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
var_dump($c->countPrefix("{$p}many/"));
array_pop($ops);
var_dump(count($c->txn()->then(...$ops)->commit()->responses), $c->countPrefix("{$p}many/"));
try {
    $c->txn()->then(Op::put("{$p}dup", '1'), Op::put("{$p}dup", '2'))->commit();
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
var_dump($c->get("{$p}dup"));
try {
    $c->txn()->then(Op::put('', 'x'))->commit();
} catch (Synod\Exception\SynodException $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
foreach (['Synod\Txn', 'Synod\Op'] as $cls) {
    try {
        new $cls();
        echo "$cls made\n";
    } catch (Throwable $e) {
        echo "new $cls: ", get_class($e), "\n";
    }
}
// Objects made without their factory fail cleanly.
$t = (new ReflectionClass('Synod\Txn'))->newInstanceWithoutConstructor();
try {
    $t->ifValue("{$p}a", '=', 'm')->then(Op::get("{$p}a"))->commit();
} catch (ValueError $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
$op = (new ReflectionClass('Synod\Op'))->newInstanceWithoutConstructor();
try {
    $c->txn()->then(Op::get("{$p}a"), $op);
} catch (ValueError $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
try {
    $c->txn()->else($op);
} catch (ValueError $e) {
    echo get_class($e), ': ', $e->getMessage(), "\n";
}
$lease->revoke();
$c->deletePrefix($p);
?>
--EXPECTF--
-- comparisons
value = m: then
value = n: else
value != m: else
value != z: then
value < n: then
value < m: else
value > l: then
value > m: else
value of absent key = '': else
version = 2: then
version != 2: else
version < 3: then
version > 2: else
version of absent key = 0: then
createRevision = its own: then
createRevision != its own: else
createRevision < its own: else
createRevision > its own - 1: then
createRevision of absent key = 0: then
modRevision = its own: then
modRevision != its own: else
modRevision < its own + 1: then
modRevision > its own: else
lease = the lease: then
lease != the lease: else
lease of unleased key = 0: then
lease of unleased key != 0: else
'==' and '<>' are accepted too: then
all must hold: else
prefix: every key's version > 0: then
prefix: every key's value = m: else
-- then
bool(true)
bool(true)
int(5)
bool(true)
bool(true)
array(3) {
  [0]=>
  string(1) "a"
  [1]=>
  string(1) "b"
  [2]=>
  string(1) "l"
}
int(1)
string(1) "m"
array(0) {
}
int(1)
NULL
NULL
-- else
bool(false)
int(4)
string(1) "m"
bool(true)
int(1)
string(1) "C"
bool(true)
NULL
NULL
object(Synod\TxnResult)#%d (3) {
  ["succeeded"]=>
  bool(false)
  ["revision"]=>
  int(%d)
  ["responses"]=>
  array(4) {
    [0]=>
    array(1) {
      [0]=>
      object(Synod\KeyValue)#%d (6) {
        ["key"]=>
        string(19) "phpt/txn/%x/a"
        ["value"]=>
        string(1) "m"
        ["createRevision"]=>
        int(%d)
        ["modRevision"]=>
        int(%d)
        ["version"]=>
        int(2)
        ["lease"]=>
        int(0)
      }
    }
    [1]=>
    int(%d)
    [2]=>
    int(1)
    [3]=>
    array(1) {
      [0]=>
      object(Synod\KeyValue)#%d (6) {
        ["key"]=>
        string(19) "phpt/txn/%x/c"
        ["value"]=>
        string(1) "C"
        ["createRevision"]=>
        int(%d)
        ["modRevision"]=>
        int(%d)
        ["version"]=>
        int(1)
        ["lease"]=>
        int(%d)
      }
    }
  }
}
-- delete prefix, empty txn
bool(true)
array(2) {
  [0]=>
  int(2)
  [1]=>
  array(0) {
  }
}
bool(true)
array(0) {
}
bool(true)
bool(false)
string(4) "else"
-- errors
ValueError: comparison operator must be one of =, !=, <, >; "<=" given
ValueError: comparison operator must be one of =, !=, <, >; "eq" given
ValueError: comparison operator must be one of =, !=, <, >; "" given
ValueError: comparison operator must be one of =, !=, <, >; "=>" given
ValueError
ValueError: limit must not be negative, -1 given
Synod\Exception\SynodException: etcdserver: too many operations in txn request
int(0)
int(128)
int(128)
Synod\Exception\SynodException: etcdserver: duplicate key given in txn request
NULL
Synod\Exception\SynodException: etcdserver: key is not provided
new Synod\Txn: Exception
new Synod\Op: Exception
ValueError: a Txn is made with Client::txn()
ValueError: an Op is made with Op::get(), Op::put() or Op::delete()
ValueError: an Op is made with Op::get(), Op::put() or Op::delete()
