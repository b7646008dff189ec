// CudaTrainer in a build without nvcc: every attempt says why, and the CPU trainer is used instead.
#include "cuda/cuda_trainer.h"

namespace attune::cuda {

Status CudaTrainer::create(LlamaModel&, const train::AdapterSet&, const CudaTrainerOptions&, std::unique_ptr<CudaTrainer>*) {
  return Status::invalid_argument(ATTUNE_NO_CUDA_REASON);
}

}  // namespace attune::cuda
