// quantizeModel: attune quantize's native part (src/quant/quantize_model.h) for the engine worker.
#pragma once

#include <napi.h>

namespace attune_addon {

// quantizeModel(srcDir, destDir, {blocksize, doubleQuant, maxShardBytes?, threads?},
//               onProgress({done, total, tensor}), cancelToken)
//   : Promise<{files, sourceTensors, quantizedWeights, tensorsWritten, totalSize, weightDtype}>
// Writes the safetensors file(s) of the NF4 checkpoint into the existing folder destDir; on
// failure nothing it wrote is left there. weightDtype: "bfloat16", "float16" or "float32".
Napi::Value quantize_model_js(const Napi::CallbackInfo& info);

}  // namespace attune_addon
