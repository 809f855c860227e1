import { ProtoWriter } from './protobuf.js';

/** ONNX TensorProto.DataType values used by Iris. */
export enum DataType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  BFLOAT16 = 16,
}

export type AttrValue = number | bigint | string | number[] | string[] | { float: number } | { floats: number[] } | TensorDef;

export interface NodeDef {
  opType: string;
  inputs: string[];
  outputs: string[];
  name: string;
  domain?: string;
  attrs?: Record<string, AttrValue>;
}

export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

export interface TensorDef {
  name: string;
  dataType: DataType;
  dims: number[];
  raw?: Uint8Array;
  external?: ExternalRef;
}

export interface ValueInfoDef {
  name: string;
  dataType: DataType;
  /** Numbers are fixed sizes, strings are symbolic (dynamic) dimensions. */
  shape: Array<number | string>;
}

export interface GraphDef {
  name: string;
  nodes: NodeDef[];
  initializers: TensorDef[];
  inputs: ValueInfoDef[];
  outputs: ValueInfoDef[];
}

function encodeTensor(t: TensorDef): ProtoWriter {
  const w = new ProtoWriter();
  w.packedInts(1, t.dims);
  w.int(2, t.dataType);
  w.string(8, t.name);
  if (t.raw) w.bytes(9, t.raw);
  if (t.external) {
    const kv = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
    w.message(13, kv('location', t.external.location));
    w.message(13, kv('offset', String(t.external.offset)));
    w.message(13, kv('length', String(t.external.length)));
    w.int(14, 1);
  }
  return w;
}

function isTensor(v: unknown): v is TensorDef {
  return typeof v === 'object' && v !== null && 'dataType' in v;
}

function encodeAttr(name: string, v: AttrValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  // AttributeType: FLOAT=1 INT=2 STRING=3 TENSOR=4 FLOATS=6 INTS=7 STRINGS=8
  if (typeof v === 'number' || typeof v === 'bigint') {
    if (typeof v === 'number' && !Number.isInteger(v)) throw new Error(`attribute ${name}: use {float} for non-integers`);
    w.int(3, v).int(20, 2);
  } else if (typeof v === 'string') {
    w.string(4, v).int(20, 3);
  } else if (Array.isArray(v)) {
    if (v.length > 0 && typeof v[0] === 'string') {
      for (const s of v as string[]) w.string(9, s);
      w.int(20, 8);
    } else {
      w.packedInts(8, v as number[]).int(20, 7);
    }
  } else if (isTensor(v)) {
    w.message(5, encodeTensor(v)).int(20, 4);
  } else if ('float' in v) {
    w.float(2, v.float).int(20, 1);
  } else {
    w.packedFloats(7, v.floats).int(20, 6);
  }
  return w;
}

function encodeValueInfo(v: ValueInfoDef): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new ProtoWriter().int(1, v.dataType).message(2, shape);
  const type = new ProtoWriter().message(1, tensorType);
  return new ProtoWriter().string(1, v.name).message(2, type);
}

/** Encodes a graph as an ONNX ModelProto (IR 10, opset 21 + com.microsoft 1). */
export function encodeModel(g: GraphDef): Uint8Array {
  const graph = new ProtoWriter();
  for (const n of g.nodes) {
    const nw = new ProtoWriter();
    for (const i of n.inputs) nw.string(1, i);
    for (const o of n.outputs) nw.string(2, o);
    nw.string(3, n.name).string(4, n.opType);
    for (const [k, v] of Object.entries(n.attrs ?? {})) nw.message(5, encodeAttr(k, v));
    if (n.domain) nw.string(7, n.domain);
    graph.message(1, nw);
  }
  graph.string(2, g.name);
  for (const t of g.initializers) graph.message(5, encodeTensor(t));
  for (const i of g.inputs) graph.message(11, encodeValueInfo(i));
  for (const o of g.outputs) graph.message(12, encodeValueInfo(o));
  const model = new ProtoWriter().int(1, 10).string(2, 'iris').message(7, graph);
  model.message(8, new ProtoWriter().string(1, '').int(2, 21));
  model.message(8, new ProtoWriter().string(1, 'com.microsoft').int(2, 1));
  return model.finish();
}
