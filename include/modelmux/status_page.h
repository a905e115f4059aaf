// The status page (ui/status.html, with its CSS and JS inline), compiled into the binary so it
// is served with no files, no CDN and no network.
#pragma once

#include <string_view>

namespace modelmux {

extern const std::string_view k_status_page;

} // namespace modelmux
