#!/usr/bin/env python3
"""Dump the CRIU oracle's compiled protobuf descriptors as JSON on stdout.

Run with the oracle's dist-packages and its pycriu/images directory on
PYTHONPATH (the generated *_pb2 modules import each other by bare name) and
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.  Argument 1 is the oracle's
dist-packages directory.

Output: {"files": [{"name", "dependencies", "messages", "enums", "extensions"}],
         "samples": {message name: {"hex", "value"}}}
where every message (nested ones flattened, by full name) lists its fields
with name, number, label, type, typeName, packed, default and criu options.
Each sample is a fully populated message (edge values: 64-bit maxima, negative
numbers, two elements per repeated field), serialized by the oracle's protobuf
(which writes fields in number order, as CRIU's protobuf-c does), plus its value
with 64-bit integers and enums as strings and bytes as base64.
The schema conformance test compares all of this against our own .proto files.
"""
import base64
import importlib
import json
import os
import sys

from google.protobuf.descriptor import FieldDescriptor as FD

LABELS = {FD.LABEL_OPTIONAL: 'optional', FD.LABEL_REQUIRED: 'required', FD.LABEL_REPEATED: 'repeated'}
TYPES = {
    FD.TYPE_DOUBLE: 'double', FD.TYPE_FLOAT: 'float', FD.TYPE_INT64: 'int64', FD.TYPE_UINT64: 'uint64',
    FD.TYPE_INT32: 'int32', FD.TYPE_FIXED64: 'fixed64', FD.TYPE_FIXED32: 'fixed32', FD.TYPE_BOOL: 'bool',
    FD.TYPE_STRING: 'string', FD.TYPE_GROUP: 'group', FD.TYPE_MESSAGE: 'message', FD.TYPE_BYTES: 'bytes',
    FD.TYPE_UINT32: 'uint32', FD.TYPE_ENUM: 'enum', FD.TYPE_SFIXED32: 'sfixed32', FD.TYPE_SFIXED64: 'sfixed64',
    FD.TYPE_SINT32: 'sint32', FD.TYPE_SINT64: 'sint64',
}


def default_of(field, has_default):
    """The explicit [default = ...] as a JSON value, or None when there is none."""
    if not has_default:
        return None
    value = field.default_value
    if field.type == FD.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if field.type == FD.TYPE_BYTES:
        return value.decode('latin-1')
    if isinstance(value, bool) or isinstance(value, str):
        return value
    # Integers travel as strings so 64-bit values keep their precision.
    return str(value)


def criu_options(field, opts_pb2):
    if not field.has_options:
        return {}
    options = field.GetOptions()
    if not options.HasExtension(opts_pb2.criu):
        return {}
    return {desc.name: value for desc, value in options.Extensions[opts_pb2.criu].ListFields()}


def dump_field(field, opts_pb2):
    proto = field.GetOptions() if field.has_options else None
    has_default = field.has_default_value
    return {
        'name': field.name,
        'number': field.number,
        'label': LABELS[field.label],
        'type': TYPES[field.type],
        'typeName': (field.message_type or field.enum_type).full_name if field.type in (FD.TYPE_MESSAGE, FD.TYPE_ENUM) else None,
        'packed': bool(proto is not None and proto.HasField('packed') and proto.packed),
        'default': default_of(field, has_default),
        'oneof': field.containing_oneof.name if field.containing_oneof is not None else None,
        'criu': criu_options(field, opts_pb2),
    }


def dump_enum(enum):
    return {'name': enum.full_name, 'values': [{'name': v.name, 'number': v.number} for v in enum.values]}


def walk_message(message, opts_pb2, messages, enums):
    messages.append({
        'name': message.full_name,
        'fields': [dump_field(f, opts_pb2) for f in message.fields],
    })
    for enum in message.enum_types:
        enums.append(dump_enum(enum))
    for nested in message.nested_types:
        walk_message(nested, opts_pb2, messages, enums)


def dump_file(fd, opts_pb2):
    messages, enums = [], []
    for message in fd.message_types_by_name.values():
        walk_message(message, opts_pb2, messages, enums)
    for enum in fd.enum_types_by_name.values():
        enums.append(dump_enum(enum))
    extensions = [{
        'name': ext.name, 'number': ext.number, 'extendee': ext.containing_type.full_name,
        'label': LABELS[ext.label], 'type': TYPES[ext.type],
        'typeName': ext.message_type.full_name if ext.message_type else None,
    } for ext in fd.extensions_by_name.values()]
    return {
        'name': fd.name,
        'dependencies': [d.name for d in fd.dependencies],
        'messages': messages,
        'enums': enums,
        'extensions': extensions,
    }


# Edge values per scalar type: extremes that differ between signed/unsigned and
# 32/64-bit encodings, so a wrong type in our schema changes decoded values.
SAMPLE_SCALARS = {
    FD.TYPE_UINT64: [0xfffffffffffff001, 7], FD.TYPE_FIXED64: [0xfffffffffffff001, 9],
    FD.TYPE_INT64: [-5, 0x7fffffffffffffff], FD.TYPE_SINT64: [-3, 0x3fffffffffffffff],
    FD.TYPE_UINT32: [0xfffffff0, 1], FD.TYPE_INT32: [-7, 0x7fffffff], FD.TYPE_SINT32: [-9, 100],
    FD.TYPE_FIXED32: [0xfffffffe, 3], FD.TYPE_SFIXED32: [-2, 4], FD.TYPE_SFIXED64: [-6, 8],
    FD.TYPE_BOOL: [True, False], FD.TYPE_DOUBLE: [1.5, -2.25], FD.TYPE_FLOAT: [0.5, -4.0],
    FD.TYPE_STRING: ['criu-\u00e9', ''], FD.TYPE_BYTES: [b'\x00\xffab', b'z'],
}
MAX_DEPTH = 4


def scalar_sample(field, index):
    if field.type == FD.TYPE_ENUM:
        values = field.enum_type.values
        return values[-1 - index % len(values)].number
    return SAMPLE_SCALARS[field.type][index % 2]


def populate(message, depth):
    for field in message.DESCRIPTOR.fields:
        is_message = field.type == FD.TYPE_MESSAGE
        if is_message and depth >= MAX_DEPTH and field.label != FD.LABEL_REQUIRED:
            continue
        if field.label == FD.LABEL_REPEATED:
            target = getattr(message, field.name)
            for i in range(2):
                if is_message:
                    populate(target.add(), depth + 1)
                else:
                    target.append(scalar_sample(field, i))
        elif is_message:
            populate(getattr(message, field.name), depth + 1)
        else:
            setattr(message, field.name, scalar_sample(field, 0))


def plain_value(message):
    """The message as JSON: fields in number order, 64-bit ints and enum names as strings."""
    out = {}
    for field, value in message.ListFields():
        def one(v):
            if field.type == FD.TYPE_MESSAGE:
                return plain_value(v)
            if field.type == FD.TYPE_ENUM:
                return field.enum_type.values_by_number[v].name
            if field.type == FD.TYPE_BYTES:
                return base64.b64encode(v).decode('ascii')
            if field.type in (FD.TYPE_UINT64, FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_FIXED64, FD.TYPE_SFIXED64):
                return str(v)
            return v
        out[field.name] = [one(v) for v in value] if field.label == FD.LABEL_REPEATED else one(value)
    return out


def sample_of(module, message_desc):
    message = getattr(module, message_desc.name)()
    populate(message, 0)
    return {'hex': message.SerializeToString().hex(), 'value': plain_value(message)}


def main():
    dist = sys.argv[1]
    images_dir = os.path.join(dist, 'pycriu', 'images')
    opts_pb2 = importlib.import_module('opts_pb2')
    modules = sorted(n[:-3] for n in os.listdir(images_dir) if n.endswith('_pb2.py'))
    loaded = [importlib.import_module(m) for m in modules] + [importlib.import_module('pycriu.rpc_pb2')]
    files = [dump_file(module.DESCRIPTOR, opts_pb2) for module in loaded]
    samples = {}
    for module in loaded:
        for message_desc in module.DESCRIPTOR.message_types_by_name.values():
            samples[message_desc.full_name] = sample_of(module, message_desc)
    json.dump({'files': files, 'samples': samples}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
