#include "pipeline/container_metadata.h"

namespace nodewarden {

std::string jobOfPod(std::string_view owner_kind, std::string_view owner_name,
                     const std::string* job_name_label, const std::string* batch_job_name_label) {
  if (owner_kind == "Job" && !owner_name.empty()) return std::string(owner_name);
  // The labels the Job controller sets on its pods (batch.kubernetes.io/job-name since 1.27).
  if (batch_job_name_label != nullptr && !batch_job_name_label->empty()) {
    return *batch_job_name_label;
  }
  if (job_name_label != nullptr && !job_name_label->empty()) return *job_name_label;
  return {};
}

}  // namespace nodewarden
