import { AttrValue, DataType, ExternalRef, GraphDef, NodeDef, TensorDef, ValueInfoDef, encodeModel } from './model.js';

export type Dim = number | string;

/**
 * Builds an ONNX graph node by node. Values are named strings; each op helper
 * returns the name of its output so graphs read like the math they compute.
 */
export class GraphBuilder {
  private nodes: NodeDef[] = [];
  private initializers: TensorDef[] = [];
  private inputs: ValueInfoDef[] = [];
  private outputs: ValueInfoDef[] = [];
  private counter = 0;
  private constCache = new Map<string, string>();
  private scope: string[] = [];

  constructor(readonly name: string) {}

  /** Prefixes generated names, so a layer's values are recognisable in errors. */
  withScope<T>(s: string, f: () => T): T {
    this.scope.push(s);
    try {
      return f();
    } finally {
      this.scope.pop();
    }
  }

  fresh(hint: string): string {
    return `${this.scope.join('/')}${this.scope.length ? '/' : ''}${hint}_${this.counter++}`;
  }

  input(name: string, dataType: DataType, shape: Dim[]): string {
    this.inputs.push({ name, dataType, shape });
    return name;
  }

  output(value: string, name: string, dataType: DataType, shape: Dim[]): void {
    if (value !== name) this.op('Identity', [value], {}, { outputs: [name] });
    this.outputs.push({ name, dataType, shape });
  }

  initializer(t: TensorDef): string {
    this.initializers.push(t);
    return t.name;
  }

  external(name: string, dataType: DataType, dims: number[], ref: ExternalRef): string {
    return this.initializer({ name, dataType, dims, external: ref });
  }

  /** A small constant tensor; identical constants are shared. */
  constFloat(values: number[] | Float32Array, dims: number[] = [values.length]): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    return this.constRaw(DataType.FLOAT, dims, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }

  constInt64(values: number[], dims: number[] = [values.length]): string {
    const data = BigInt64Array.from(values.map((v) => BigInt(v)));
    return this.constRaw(DataType.INT64, dims, new Uint8Array(data.buffer));
  }

  scalarFloat(v: number): string {
    return this.constFloat([v], []);
  }

  private constRaw(dataType: DataType, dims: number[], raw: Uint8Array): string {
    const key = raw.length <= 256 ? `${dataType}|${dims.join(',')}|${Buffer.from(raw).toString('base64')}` : '';
    if (key) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const name = `const_${this.counter++}`;
    this.initializers.push({ name, dataType, dims, raw: new Uint8Array(raw) });
    if (key) this.constCache.set(key, name);
    return name;
  }

  op(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: string[] | number } = {},
  ): string {
    return this.opMulti(opType, inputs, attrs, opts)[0]!;
  }

  opMulti(
    opType: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    opts: { domain?: string; outputs?: string[] | number } = {},
  ): string[] {
    const outs = Array.isArray(opts.outputs)
      ? opts.outputs
      : Array.from({ length: opts.outputs ?? 1 }, () => this.fresh(opType));
    const node: NodeDef = { opType, inputs, outputs: outs, name: this.fresh(`n_${opType}`), attrs };
    if (opts.domain) node.domain = opts.domain;
    this.nodes.push(node);
    return outs;
  }

  // ---- op helpers -------------------------------------------------------
  add(a: string, b: string): string { return this.op('Add', [a, b]); }
  sub(a: string, b: string): string { return this.op('Sub', [a, b]); }
  mul(a: string, b: string): string { return this.op('Mul', [a, b]); }
  div(a: string, b: string): string { return this.op('Div', [a, b]); }
  neg(a: string): string { return this.op('Neg', [a]); }
  matmul(a: string, b: string): string { return this.op('MatMul', [a, b]); }
  /** x @ w^T for a weight stored [out, in], as checkpoints store Linear layers. */
  linearNoBias(x: string, w: string): string {
    return this.op('FusedMatMul', [x, w], { transB: 1 }, { domain: 'com.microsoft' });
  }
  linear(x: string, w: string, b?: string): string {
    const y = this.linearNoBias(x, w);
    return b ? this.add(y, b) : y;
  }
  reshape(x: string, shape: number[]): string { return this.op('Reshape', [x, this.constInt64(shape)]); }
  reshapeDyn(x: string, shape: string): string { return this.op('Reshape', [x, shape]); }
  transpose(x: string, perm: number[]): string { return this.op('Transpose', [x], { perm }); }
  concat(xs: string[], axis: number): string { return this.op('Concat', xs, { axis }); }
  /** Parts of `x` along `axis`; `names` picks the output names (e.g. graph outputs), else fresh ones. */
  split(x: string, sizes: number[], axis: number, names?: Array<string | undefined>): string[] {
    const outputs = sizes.map((_, i) => names?.[i] ?? this.fresh('Split'));
    return this.opMulti('Split', [x, this.constInt64(sizes)], { axis }, { outputs });
  }
  gather(x: string, idx: string, axis = 0): string { return this.op('Gather', [x, idx], { axis }); }
  softmax(x: string, axis = -1): string { return this.op('Softmax', [x], { axis }); }
  cast(x: string, to: DataType): string { return this.op('Cast', [x], { to }); }
  slice(x: string, starts: number[], ends: number[], axes: number[]): string {
    return this.op('Slice', [x, this.constInt64(starts), this.constInt64(ends), this.constInt64(axes)]);
  }
  sigmoid(x: string): string { return this.op('Sigmoid', [x]); }
  silu(x: string): string { return this.mul(x, this.sigmoid(x)); }
  /** Exact (erf) GELU. */
  gelu(x: string): string { return this.op('Gelu', [x], {}, { domain: 'com.microsoft' }); }
  quickGelu(x: string): string { return this.mul(x, this.sigmoid(this.mul(x, this.scalarFloat(1.702)))); }
  shape(x: string): string { return this.op('Shape', [x]); }

  build(): GraphDef {
    return { name: this.name, nodes: this.nodes, initializers: this.initializers, inputs: this.inputs, outputs: this.outputs };
  }

  encode(): Uint8Array {
    return encodeModel(this.build());
  }
}
