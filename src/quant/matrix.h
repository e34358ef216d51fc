// Matrix types shared by the quantization algorithms.
// Weights follow the Hugging Face layout: W is [out, in], y = x·Wᵀ.
#pragma once
#include <Eigen/Dense>

namespace bwla {
using MatrixRM = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixD = Eigen::MatrixXd;
using VectorF = Eigen::VectorXf;
using VectorD = Eigen::VectorXd;
}  // namespace bwla
