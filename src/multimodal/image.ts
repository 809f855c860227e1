/**
 * A decoded 8-bit RGB image, row-major, channels interleaved (HWC): the byte for
 * channel c of pixel (x, y) is data[(y * width + x) * 3 + c]. This is the layout
 * PIL/numpy hand to the Hugging Face processors, so ports can index it the same way.
 */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}
