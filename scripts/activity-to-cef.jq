# The cefwire activity mapping written in jq (the baseline of
# scripts/bench-convert-vs-jq.sh): same fields, same order, same escaping.
def ext: if . == null then "" else tostring end
  | gsub("\\\\"; "\\\\") | gsub("="; "\\=") | gsub("\n"; "\\n") | gsub("\r"; "\\r")
  | gsub("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]"; " ");
def hdr: tostring | gsub("\\\\"; "\\\\") | gsub("\\|"; "\\|")
  | gsub("[\u0000-\u0008\n-\u001f\u007f]"; " ");
def ipv4: test("^[0-9]{1,3}(\\.[0-9]{1,3}){3}$");
(.timestamp | tonumber) as $ts
| (.device.clientIP // "") as $ip
| (($ts / 1000 | floor | strftime("%Y-%m-%dT%H:%M:%S")) + "." + ("00" + ($ts % 1000 | tostring))[-3:] + "Z")
  + " CEF:0|MCAS|SIEM_Agent|0.1.0|" + ((.eventTypeName // "EVENT_CATEGORY_UNSPECIFIED") | hdr)
  + "|" + ((.description_metadata.event_category // .mainInfo.prettyOperationName // .eventTypeValue // .eventTypeName // "EVENT_CATEGORY_UNSPECIFIED") | hdr)
  + "|0|externalId=" + (._id | ext)
  + " rt=" + ($ts | tostring) + " start=" + ($ts | tostring) + " end=" + ($ts | tostring)
  + " msg=" + (.description | ext) + " suser=" + (.user.userName | ext)
  + " destinationServiceName=" + (.appName | ext)
  + " dvc=" + (if ($ip | ipv4) then $ip else "" end)
  + " requestClientApplication=" + (.device.userAgent | ext)
  + " cs1Label=portalURL cs1=https://portal.cloudappsecurity.com/#/audits?activity.id\\=eq(" + (._id | ext) + ",)"
  + " cs2Label=uniqueServiceAppIds cs2=" + (if .appId == null then "" else "APPID_" + (.appId | ext) end)
  + " cs3Label=targetObjects cs3=" + ([.mainInfo.eventObjects[]? | .name | ext] | join(","))
  + " cs4Label=policyIDs cs4=" + ([.matchingRules[]? | if type == "object" then .id else . end | ext] | join(","))
  + " c6a1Label=\"Device IPv6 Address\" c6a1=" + (if ($ip | test(":")) then $ip else "" end)
