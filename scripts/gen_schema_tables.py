#!/usr/bin/env python3
"""Extracts the field schema tables of orchestrator/types/schema_*.cc.

Reads the Go type definitions of Kubernetes' API packages (k8s.io/api and
k8s.io/apimachinery, as checked out by `git`), and writes, for every struct
reachable from the kinds Ganglion serves, its fields as data: JSON name,
value type, list/map shape, protobuf field number, pointer-ness, omitempty,
required-ness (no omitempty and no "+optional" marker) and the
strategic-merge patch strategy and merge key. Only those facts are taken; no
comment or code text is copied.

usage: scripts/gen_schema_tables.py <k8s.io/api git dir> <k8s.io/apimachinery git dir> <out dir> [tag]
(tag defaults to v0.32.9: the Kubernetes 1.32 types this server answers as)
"""
import re
import subprocess
import sys

API, MACHINERY, OUT = sys.argv[1], sys.argv[2], sys.argv[3]
REF = sys.argv[4] if len(sys.argv) > 4 else 'v0.32.9'

# package key -> (repo, path, OpenAPI name prefix, output file, C++ table name)
PACKAGES = {
    'meta': (MACHINERY, 'pkg/apis/meta/v1/types.go', 'io.k8s.apimachinery.pkg.apis.meta.v1.',
             'schema_meta.cc', 'MetaV1Schemas'),
    'core': (API, 'core/v1/types.go', 'io.k8s.api.core.v1.', 'schema_core.cc', 'CoreV1Schemas'),
    'apps': (API, 'apps/v1/types.go', 'io.k8s.api.apps.v1.', 'schema_apps.cc', 'AppsV1Schemas'),
    'autoscaling': (API, 'autoscaling/v1/types.go', 'io.k8s.api.autoscaling.v1.',
                    'schema_autoscaling.cc', 'AutoscalingV1Schemas'),
    'coordination': (API, 'coordination/v1/types.go', 'io.k8s.api.coordination.v1.',
                     'schema_coordination.cc', 'CoordinationV1Schemas'),
}
# The Go import names each package uses for the others.
QUALIFIERS = {'metav1': 'meta', 'v1': 'core', 'corev1': 'core'}
ROOTS = [
    ('core', n) for n in ['Namespace', 'Node', 'Pod', 'Service', 'Endpoints', 'ConfigMap', 'Event',
                          'PersistentVolume', 'PersistentVolumeClaim', 'Binding']
] + [('apps', n) for n in ['ReplicaSet', 'Deployment', 'StatefulSet', 'DaemonSet',
                           'ControllerRevision']] + [
    ('autoscaling', 'Scale'), ('coordination', 'Lease'),
    ('meta', 'DeleteOptions'), ('meta', 'Status'), ('meta', 'ListMeta')]
# Leaf types with their own JSON form and wire message (see schema.h).
SPECIAL = {
    ('meta', 'Time'): 'kTime', ('meta', 'MicroTime'): 'kMicroTime',
    ('meta', 'FieldsV1'): 'kRawJson', ('runtime', 'RawExtension'): 'kRawJson',
    ('resource', 'Quantity'): 'kQuantity', ('intstr', 'IntOrString'): 'kIntOrString',
    ('types', 'UID'): 'kString', ('meta', 'Duration'): 'kString',
}
SCALARS = {'string': 'kString', 'int32': 'kInt32', 'int64': 'kInt64', 'bool': 'kBool',
           'float64': 'kDouble', 'int': 'kInt64'}

commits = {}
structs = {}  # (pkg, name) -> list of field dicts
aliases = {}  # (pkg, name) -> go type text


def parse(pkg):
    repo, path, _, _, _ = PACKAGES[pkg]
    commits[repo] = subprocess.check_output(['git', '-C', repo, 'rev-parse', REF + '^{commit}'], text=True).strip()
    text = subprocess.check_output(['git', '-C', repo, 'show', REF + ':' + path], text=True)
    cur = None
    markers = []
    for line in text.splitlines():
        s = line.strip()
        if cur is None:
            m = re.match(r'^type (\w+) struct \{$', s)
            if m:
                cur = (pkg, m.group(1))
                structs[cur] = []
                markers = []
                continue
            m = re.match(r'^type (\w+) (\S.*)$', s)
            if m and not m.group(2).startswith(('interface', 'struct', '=')):
                aliases[(pkg, m.group(1))] = m.group(2).split('//')[0].strip()
            continue
        if s == '}':
            cur = None
            continue
        if s.startswith('//'):
            markers.append(s)
            continue
        if not s:
            continue
        m = re.match(r'^(?:(\w+)\s+)?([\w.*\[\]]+)\s+`([^`]*)`$', s)
        if not m:
            markers = []
            continue
        go_name, go_type, tags = m.groups()
        tag = dict(re.findall(r'(\w+):"([^"]*)"', tags))
        if go_name is None and tag.get('json', '').split(',')[0]:
            go_name = go_type.split('.')[-1]  # embedded but named in JSON: an ordinary field
        optional = any(x.startswith('// +optional') for x in markers)
        markers = []
        if 'json' not in tag or tag['json'] == '-':
            continue
        json_parts = tag['json'].split(',')
        proto = tag.get('protobuf', '').split(',')
        structs[cur].append({
            'json': json_parts[0], 'inline': go_name is None,
            'omitempty': 'omitempty' in json_parts[1:], 'type': go_type,
            'number': int(proto[1]) if len(proto) > 1 else 0,
            'optional': optional, 'strategy': tag.get('patchStrategy', ''),
            'merge_key': tag.get('patchMergeKey', ''), 'go_name': go_name or go_type.split('.')[-1],
        })


def resolve(pkg, t):
    """-> (shape, value type, object (pkg, name) or None, pointer)"""
    pointer = t.startswith('*')
    t = t.lstrip('*')
    if t == '[]byte':
        return 'kOne', 'kBytes', None, pointer
    if t.startswith('[]'):
        _, v, o, _ = resolve(pkg, t[2:])
        return 'kList', v, o, pointer
    m = re.match(r'^map\[[\w.]+\](.+)$', t)
    if m:
        _, v, o, _ = resolve(pkg, m.group(1))
        return 'kMap', v, o, pointer
    if t in SCALARS:
        return 'kOne', SCALARS[t], None, pointer
    if '.' in t:
        q, name = t.split('.')
        p = QUALIFIERS.get(q, q)
    else:
        p, name = pkg, t
    if (p, name) in SPECIAL:
        return 'kOne', SPECIAL[(p, name)], None, pointer
    if (p, name) in aliases:
        shape, v, o, _ = resolve(p, aliases[(p, name)])
        return shape, v, o, pointer
    if (p, name) in structs:
        return 'kOne', 'kObject', (p, name), pointer
    raise SystemExit(f'unknown Go type {t} in package {pkg}')


def schema_name(key):
    return PACKAGES[key[0]][2] + key[1]


for p in PACKAGES:
    parse(p)

# Reachable structs, in discovery order.
order, seen, todo = [], set(), list(ROOTS)
while todo:
    key = todo.pop(0)
    if key in seen:
        continue
    seen.add(key)
    order.append(key)
    for f in structs[key]:
        if f['json'] == '' and f['number'] == 0:
            continue  # TypeMeta / ListMeta inline without a wire number: expanded below
        _, _, obj, _ = resolve(key[0], f['type'])
        if obj:
            todo.append(obj)


def rows(key):
    out = []
    for f in structs[key]:
        if f['inline'] and f['number'] == 0:
            if f['type'] == 'metav1.TypeMeta' or (key[0] == 'meta' and f['type'] == 'TypeMeta'):
                out.append('{"apiVersion", Shape::kOne, ValueType::kString, "", 0, kOmitEmpty, "", ""}')
                out.append('{"kind", Shape::kOne, ValueType::kString, "", 0, kOmitEmpty, "", ""}')
                continue
            raise SystemExit(f'inline field without a wire number in {key}: {f}')
        shape, vt, obj, pointer = resolve(key[0], f['type'])
        name = f['json']
        if f['inline']:
            shape = 'kInline'
            name = f['go_name'][0].lower() + f['go_name'][1:]
        flags = []
        if not f['omitempty'] and not f['optional'] and not f['inline']:
            flags.append('kRequired')
        if pointer:
            flags.append('kPointer')
        if f['omitempty']:
            flags.append('kOmitEmpty')
        out.append('{"%s", Shape::%s, ValueType::%s, "%s", %d, %s, "%s", "%s"}' % (
            name, shape, vt, schema_name(obj) if obj else '', f['number'],
            ' | '.join(flags) or '0', f['strategy'], f['merge_key']))
    return out


for pkg, (repo, path, prefix, out_file, table) in PACKAGES.items():
    keys = [k for k in order if k[0] == pkg]
    lines = [
        f'// Field schemas of {prefix}* as data; see schema.h for what each column means.',
        f'// Generated by scripts/gen_schema_tables.py from the Go types of',
        f'// {"k8s.io/apimachinery" if repo == MACHINERY else "k8s.io/api"} {path} {REF} (commit {commits[repo][:12]})',
        '// (names, wire numbers, types, merge keys: facts only). Regenerate rather than edit.',
        '#include "orchestrator/types/schema.h"',
        '',
        'namespace ganglion::orchestrator::schema_tables {',
        '',
        'namespace {',
        '',
        '// One row a field, unwrapped, so the tables diff line by line.',
        '// clang-format off',
    ]
    for k in keys:
        lines.append(f'constexpr FieldSchema k{k[1]}[] = {{')
        lines += ['    ' + r + ',' for r in rows(k)]
        lines.append('};')
    lines += ['// clang-format on', '', '}  // namespace', '', f'std::vector<TypeSchema> {table}() {{', '  return {']
    for k in keys:
        lines.append(f'      {{"{schema_name(k)}", k{k[1]}}},')
    lines += ['  };', '}', '', '}  // namespace ganglion::orchestrator::schema_tables', '']
    with open(f'{OUT}/{out_file}', 'w') as fh:
        fh.write('\n'.join(lines))
    print(out_file, len(keys), 'types', sum(len(structs[k]) for k in keys), 'fields')
