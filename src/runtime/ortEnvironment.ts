/**
 * Process environment settings ONNX Runtime reads when it creates kernels. ORT reads the C
 * environment, which only the main thread can set (a worker's process.env is its own copy), so
 * this runs on the main thread before the engine's worker starts, and again before each session
 * (which covers models loaded on the main thread).
 */
export function configureOrtEnvironment(): void {
  // 4-bit mixture-of-experts weights through MLAS's blockwise int4 GEMM: without it ORT
  // dequantizes every active expert's whole matrix each call (measured 30x slower at decode;
  // outputs equal the dequantized weights' to 1e-7).
  process.env.ORT_USE_MLAS_Q4_GEMM_MOE ??= '1';
}
