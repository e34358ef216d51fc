// PNG plots for `bwla inspect` through PLplot (Debian libplplot-dev). The
// device is pngcairo when this PLplot has it, else pngqt (run offscreen).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>

#include "core/error.h"
#include "diagnostics/inspect.h"
#include "io/output_path.h"

#ifdef BWLA_HAVE_PLPLOT
#include <plstream.h>
#endif

namespace bwla {

#ifndef BWLA_HAVE_PLPLOT

bool inspect_plots_available() { return false; }

std::vector<std::string> write_inspect_plots(const InspectData&, const std::string&,
                                             const std::string&) {
  throw Error(
      "--plots: this bwla was built without PLplot; install libplplot-dev (pkg-config "
      "plplot-c++) and re-run cmake");
}

#else

namespace {

const char* png_device() {
  static std::string dev = [] {
    const char* menu[128];
    const char* names[128];
    const char** pm = menu;
    const char** pn = names;
    int n = 128;
    plstream probe;
    probe.gFileDevs(&pm, &pn, &n);
    std::string best;
    for (int i = 0; i < n; ++i) {
      std::string d = names[i];
      if (d == "pngcairo") return d;
      if (d == "pngqt") best = d;
    }
    return best;
  }();
  return dev.c_str();
}

// Line colours (cmap0 indices 2..5).
void setup_colors(plstream& p) {
  p.scol0(0, 255, 255, 255);  // background
  p.scol0(1, 0, 0, 0);        // axes, labels
  p.scol0(2, 90, 90, 90);     // grey
  p.scol0(3, 0, 90, 200);     // blue
  p.scol0(4, 220, 60, 20);    // red
  p.scol0(5, 20, 150, 60);    // green
}

std::unique_ptr<plstream> open_png(const std::string& path) {
  const char* dev = png_device();
  BWLA_CHECK(*dev, "--plots: this PLplot has neither the pngcairo nor the pngqt device");
  // The Qt device needs no display when told to render offscreen.
  setenv("QT_QPA_PLATFORM", "offscreen", 0);
  setenv("QT_LOGGING_RULES", "default.warning=false", 0);
  auto p = std::make_unique<plstream>();
  p->sdev(dev);
  p->sfnam(path.c_str());
  p->spage(0, 0, 1000, 640, 0, 0);
  setup_colors(*p);
  p->init();
  p->schr(0, 0.9);
  return p;
}

void legend(plstream& p, const std::vector<std::string>& labels, double x0, double x1, double y0,
            double dy, bool log_y = false) {
  for (size_t i = 0; i < labels.size(); ++i) {
    double y = y0 - dy * (double)i;
    PLFLT xs[2] = {x0, x0 + 0.12 * (x1 - x0)}, ys[2] = {y, y};
    p.col0(3 + (int)i);
    p.width(3);
    p.line(2, xs, ys);
    p.col0(1);
    p.ptex(x0 + 0.15 * (x1 - x0), y, 1, 0, 0, labels[i].c_str());
  }
  (void)log_y;
}

// Density histogram of v on [lo, hi] (values outside are dropped).
std::vector<PLFLT> density(const std::vector<float>& v, double lo, double hi, int bins) {
  std::vector<PLFLT> h(bins, 0.0);
  const double bw = (hi - lo) / bins;
  for (float x : v) {
    if (!(x >= lo && x < hi)) continue;
    h[std::min(bins - 1, (int)((x - lo) / bw))] += 1;
  }
  for (auto& c : h) c /= (double)std::max<size_t>(v.size(), 1) * bw;
  return h;
}

std::string weights_plot(const InspectData& d, const std::string& path, const std::string& title) {
  const double R = 4.0;
  const int bins = 81;
  std::vector<PLFLT> xc(bins);
  for (int i = 0; i < bins; ++i) xc[i] = -R + (i + 0.5) * 2 * R / bins;
  std::vector<std::vector<PLFLT>> hs;
  double ymax = 0;
  for (auto& v : d.weight_values) {
    hs.push_back(density(v, -R, R, bins));
    ymax = std::max(ymax, *std::max_element(hs.back().begin(), hs.back().end()));
  }
  auto p = open_png(path);
  p->col0(1);
  p->env(-R, R, 0, ymax * 1.12, 0, 0);
  p->lab("(w - mean_i) / mean|w - mean_i|  (per row i, pooled)", "density", title.c_str());
  PLFLT vx[2] = {-1, -1}, vy[2] = {0, ymax * 1.12};
  p->col0(2);
  p->lsty(2);
  p->line(2, vx, vy);
  vx[0] = vx[1] = 1;
  p->line(2, vx, vy);
  p->lsty(1);
  for (size_t s = 0; s < hs.size(); ++s) {
    p->col0(3 + (int)s);
    p->width(2);
    p->line(bins, xc.data(), hs[s].data());
  }
  p->width(1);
  legend(*p, d.weight_labels, -R * 0.97, -R * 0.97 + 2.6, ymax * 1.06, ymax * 0.06);
  return path;
}

std::string acts_plot(const InspectData& d, const std::string& path, const std::string& title,
                      const std::string& after_label) {
  auto p = open_png(path);
  p->ssub(2, 1);
  // Left: per-token max|x|/rms(x), sorted.
  std::vector<float> a = d.tok_ratio_before, b = d.tok_ratio_after;
  std::sort(a.rbegin(), a.rend());
  std::sort(b.rbegin(), b.rend());
  double ymax = 1;
  for (float v : a) ymax = std::max(ymax, (double)v);
  for (float v : b) ymax = std::max(ymax, (double)v);
  p->col0(1);  // env advances to the next subpage
  p->env(0, 1, 0, ymax * 1.1, 0, 0);
  p->lab("token rank (fraction, sorted)", "max|x| / rms(x)", (title + ": per-token peak").c_str());
  const std::vector<float>* series[2] = {&a, &b};
  for (int s = 0; s < 2; ++s) {
    const auto& v = *series[s];
    std::vector<PLFLT> xs(v.size()), ys(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      xs[i] = v.size() > 1 ? (double)i / (double)(v.size() - 1) : 0.0;
      ys[i] = v[i];
    }
    p->col0(3 + s);
    p->width(2);
    p->line((PLINT)v.size(), xs.data(), ys.data());
  }
  p->width(1);
  legend(*p, {"before rotation", after_label}, 0.04, 0.7, ymax * 0.3, ymax * 0.07);
  // Right: pooled x/rms(x) histogram, log density.
  double R = 1;
  for (float v : d.act_norm_before) R = std::max(R, (double)std::fabs(v));
  for (float v : d.act_norm_after) R = std::max(R, (double)std::fabs(v));
  R = std::ceil(R * 1.02);
  const int bins = 121;
  std::vector<PLFLT> xc(bins);
  for (int i = 0; i < bins; ++i) xc[i] = -R + (i + 0.5) * 2 * R / bins;
  auto hb = density(d.act_norm_before, -R, R + 1e-9, bins);
  auto ha = density(d.act_norm_after, -R, R + 1e-9, bins);
  double lo = 1e300, hi = 0;
  for (auto* h : {&hb, &ha})
    for (double v : *h)
      if (v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  if (hi <= 0) lo = 1e-3, hi = 1;
  const double floor = std::log10(lo) - 0.5;
  p->col0(1);
  p->env(-R, R, floor, std::log10(hi) + 0.3, 0, 20);
  p->lab("x / rms(x)  (per token, pooled)", "density (log)", (title + ": tails").c_str());
  for (int s = 0; s < 2; ++s) {
    const auto& h = s == 0 ? hb : ha;
    std::vector<PLFLT> ly(bins);
    for (int i = 0; i < bins; ++i) ly[i] = h[i] > 0 ? std::log10(h[i]) : floor;
    p->col0(3 + s);
    p->width(2);
    p->line(bins, xc.data(), ly.data());
  }
  p->width(1);
  return path;
}

std::string svd_plot(const InspectData& d, const std::string& path, const std::string& title) {
  double hi = 0;
  size_t k = 0;
  for (auto& s : d.sv) {
    k = std::max(k, s.size());
    if (!s.empty()) hi = std::max(hi, s[0]);
  }
  const double lo = std::max(hi * 1e-4, 1e-30);  // clamp numerical zeros
  double mn = hi;
  for (auto& s : d.sv)
    for (double v : s) mn = std::min(mn, std::max(v, lo));
  auto p = open_png(path);
  p->col0(1);
  const double y0 = std::log10(mn) - 0.2, y1 = std::log10(hi) + 0.8;
  p->env(0, (double)k + 1, y0, y1, 0, 20);
  p->lab("index", "singular value (log)", title.c_str());
  for (size_t s = 0; s < d.sv.size(); ++s) {
    std::vector<PLFLT> xs(d.sv[s].size()), ys(d.sv[s].size());
    for (size_t i = 0; i < xs.size(); ++i) {
      xs[i] = (double)i + 1;
      ys[i] = std::log10(std::max(d.sv[s][i], lo));
    }
    p->col0(3 + (int)s);
    p->width(2);
    p->line((PLINT)xs.size(), xs.data(), ys.data());
  }
  p->width(1);
  legend(*p, d.sv_labels, (double)k * 0.45, (double)k + 1, y1 - 0.07 * (y1 - y0), 0.07 * (y1 - y0));
  return path;
}

}  // namespace

bool inspect_plots_available() { return *png_device() != 0; }

std::vector<std::string> write_inspect_plots(const InspectData& d, const std::string& dir,
                                             const std::string& prefix) {
  // A plot directory is bwla's (marker): new plots join earlier ones there,
  // each written beside its final name and renamed into place.
  claim_work_dir(dir, "inspect --plots");
  const json& r = d.report;
  const std::string title = fmt::format("layer {} {}", r["layer"].get<int>(), r["linear"].get<std::string>());
  const std::string base = (std::filesystem::path(dir) / prefix).string();
  std::vector<std::string> out;
  auto place = [&](const std::string& name, const std::function<void(const std::string&)>& plot) {
    const std::string final_path = base + name, tmp = temp_sibling(final_path);
    plot(tmp);
    std::error_code ec;
    BWLA_CHECK(std::filesystem::exists(tmp, ec) && std::filesystem::file_size(tmp, ec) > 0,
               "--plots: PLplot did not write '{}'", final_path);
    std::filesystem::rename(tmp, final_path, ec);
    if (ec) {
      std::filesystem::remove(tmp, ec);
      fail("--plots: cannot write '{}': {}", final_path, ec.message());
    }
    out.push_back(final_path);
  };
  if (!d.weight_values.empty())
    place("weights.png", [&](const std::string& p) { weights_plot(d, p, title + " weight rows"); });
  if (!d.tok_ratio_before.empty())
    place("acts.png", [&](const std::string& p) {
      acts_plot(d, p, title, d.quantized ? "after stored transform" : "after OKT rotation");
    });
  if (!d.sv.empty())
    place("svd.png", [&](const std::string& p) { svd_plot(d, p, title + " singular values"); });
  return out;
}

#endif

}  // namespace bwla
