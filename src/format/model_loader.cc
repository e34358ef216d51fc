#include "format/model_loader.h"


#include "core/error.h"
#include "core/log.h"
#include "format/quant_model.h"
#include "model/ops.h"
#include "runtime/packed_format.h"

namespace bwla {


std::unique_ptr<Model> load_model_skeleton(const std::string& dir) {
  return Model::load_skeleton(dir, packed_table_hooks());
}

std::unique_ptr<Model> load_model(const std::string& dir, bool prepack_dense) {
  auto m = load_model_skeleton(dir);
  if (is_packed_config(m->cfg))
    load_packed_layers(*m);
  else if (is_quantized_config(m->cfg))
    load_quantized_layers(*m);
  else
    load_dense_layers(*m, prepack_dense);
  finish_load(*m, prepack_dense);
  return m;
}

}  // namespace bwla
