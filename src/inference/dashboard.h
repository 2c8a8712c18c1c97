// The inference dashboard page (GET /dashboard): one self-contained HTML document whose script
// reads /dashboard/api/overview, /model/list, /model/status and /dashboard/api/swap-history and
// activates models with POST /model/swap. Every call sends x-inference-token, which the page asks
// for once and keeps in the tab's sessionStorage.
// Thread-safety: returns a constant.
#pragma once

#include <string_view>

namespace edgecoder::inference {

std::string_view dashboard_html();

}  // namespace edgecoder::inference
