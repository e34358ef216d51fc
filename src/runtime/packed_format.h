// The packed bwla model format ("bwla-packed", docs/FORMAT.md): real 1-bit
// storage (written by format/packed_writer.h from a fake-quant directory) and
// its loader into PackedLinear layers with the sign bits memory-mapped. This
// is the runtime's side: it needs neither Eigen nor the quantizers.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace bwla {

constexpr const char* kPackedQuantMethod = "bwla-packed";
// 2: optional int8 head/embedding; 3: 4-bit head/embedding tables and int8 PSP
// factors; 4: ARB-RC linears (row and column scales). The writer writes the
// lowest version that has what it stores; the loader reads 1 to 4.
constexpr int kPackedFormatVersion = 4;
constexpr int kPackedMaxPlanesLimit = 8;  // loader and writer limit

// Storage of the embedding table / output head in a packed file, one traits
// entry each (as ggml's type traits): the --head-dtype / --embed-dtype name,
// the name quantization_config records (null for keep: the source's dtype),
// and the lowest format version that has it.
enum class TableDtype { Keep, F16, Q8, Q4 };
struct TableDtypeTraits {
  TableDtype type;
  const char* option;
  const char* config_name;
  int format_version;
};
const TableDtypeTraits& table_dtype_traits(TableDtype t);
// The option name's type; anything else is a bwla::Error naming the options.
TableDtype parse_table_dtype(const std::string& option);
std::vector<std::string> table_dtype_options();

bool is_packed_config(const ModelConfig& cfg);

// The readers of the quantized embedding / head tables (Q8: I8 rows with F32
// row scales; Q4: U8 nibbles with F16 group scales), by tensor dtype, for
// Model::load_skeleton.
const TableHooks& packed_table_hooks();

// Builds every layer of m (loaded with Model::load_skeleton) from its packed store.
void load_packed_layers(Model& m);

// Loads a packed model directory: skeleton, packed layers, finish_load (a
// directory of any other storage is a bwla::Error naming format/model_loader.h).
std::unique_ptr<Model> load_packed_model(const std::string& dir);

}  // namespace bwla
