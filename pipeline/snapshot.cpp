#include "pipeline/snapshot.h"

namespace nodewarden {

const char* qosName(QosClass qos) {
  switch (qos) {
    case QosClass::kGuaranteed:
      return "guaranteed";
    case QosClass::kBurstable:
      return "burstable";
    case QosClass::kBestEffort:
      return "besteffort";
    case QosClass::kUnknown:
      break;
  }
  return "";
}

}  // namespace nodewarden
