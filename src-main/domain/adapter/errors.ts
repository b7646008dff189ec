/**
 * Why a PEFT adapter folder cannot be used (or written). `file` is the file (or folder) the
 * message is about; the message names it and says what is wrong and, where it can, what to do.
 *
 * - NOT_AN_ADAPTER: the folder lacks adapter_config.json or adapter_model.safetensors.
 * - INVALID_CONFIG: adapter_config.json is not JSON, or a setting has the wrong type or value.
 * - UNSUPPORTED: a valid PEFT setting Attune cannot honour (rank_pattern, modules_to_save, a bias,
 *   fan_in_fan_out, another peft_type, a module Attune does not adapt…).
 * - INVALID_WEIGHTS: adapter_model.safetensors is damaged, holds tensors that are not LoRA weights
 *   of the targets, lacks some, has the wrong rank or dtype, or non-finite values.
 * - WRONG_MODEL: the weights are for a base model with other sizes than this one.
 * - BAD_INPUT: the writer was given an inconsistent adapter.
 */
export type AdapterErrorCode = 'NOT_AN_ADAPTER' | 'INVALID_CONFIG' | 'UNSUPPORTED' | 'INVALID_WEIGHTS' | 'WRONG_MODEL' | 'BAD_INPUT'

export class AdapterError extends Error {
  constructor(
    readonly code: AdapterErrorCode,
    readonly file: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
    this.name = 'AdapterError'
  }
}
