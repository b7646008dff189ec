/**
 * Why a safetensors file cannot be read (or tensors cannot be written). Every message names the
 * file and, where one is at fault, the tensor (`tensor`), and says what is wrong in plain words.
 *
 * - TOO_SMALL: fewer than the 8 bytes of the header length.
 * - HEADER_TOO_LARGE: the header length is over 100,000,000 bytes (the reference's limit).
 * - HEADER_OUT_OF_FILE: the header length runs past the end of the file.
 * - HEADER_NOT_UTF8, HEADER_NOT_JSON, HEADER_NOT_OBJECT: the header is not a UTF-8 JSON object.
 * - BAD_METADATA: `__metadata__` is not an object of strings.
 * - BAD_TENSOR: a tensor's entry is not `{dtype, shape, data_offsets}` (or its name is unusable).
 * - UNKNOWN_DTYPE: a dtype the format does not have.
 * - BAD_SHAPE: a shape that is not a list of non-negative integers, or has too many elements.
 * - BAD_OFFSETS: data_offsets that are not `[begin, end]` with 0 ≤ begin ≤ end.
 * - SIZE_MISMATCH: end − begin is not shape × dtype size (or packed bits do not fill whole bytes).
 * - OUT_OF_FILE: a tensor's data runs past the end of the file.
 * - OVERLAP: two tensors share bytes.
 * - HOLE: bytes of the data section that no tensor uses (between tensors or at the end).
 * - READ_FAILED: the file could not be read (missing, unreadable…).
 * - BAD_INPUT: the writer was given a tensor it cannot store (wrong data length or array type,
 *   unknown dtype, a name that is not a well-formed string, a non-string metadata value).
 */
export type SafetensorsErrorCode =
  | 'TOO_SMALL'
  | 'HEADER_TOO_LARGE'
  | 'HEADER_OUT_OF_FILE'
  | 'HEADER_NOT_UTF8'
  | 'HEADER_NOT_JSON'
  | 'HEADER_NOT_OBJECT'
  | 'BAD_METADATA'
  | 'BAD_TENSOR'
  | 'UNKNOWN_DTYPE'
  | 'BAD_SHAPE'
  | 'BAD_OFFSETS'
  | 'SIZE_MISMATCH'
  | 'OUT_OF_FILE'
  | 'OVERLAP'
  | 'HOLE'
  | 'READ_FAILED'
  | 'BAD_INPUT'

export class SafetensorsError extends Error {
  constructor(
    readonly code: SafetensorsErrorCode,
    /** The file's path (or the name given for bytes in memory). */
    readonly file: string,
    message: string,
    /** The tensor at fault, when one is. */
    readonly tensor?: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'SafetensorsError'
  }
}
