namespace Postern.Tests.Support;

/// <summary>RFC 8460 §4.4 written down as a JSON Schema (draft 2020-12): what every report must satisfy, sent or received.</summary>
public static class TlsRptSchema
{
    public const string Report = """
        {
          "$schema": "https://json-schema.org/draft/2020-12/schema",
          "type": "object",
          "required": ["organization-name", "date-range", "contact-info", "report-id", "policies"],
          "properties": {
            "organization-name": { "type": "string", "minLength": 1 },
            "date-range": {
              "type": "object",
              "required": ["start-datetime", "end-datetime"],
              "properties": {
                "start-datetime": { "type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$" },
                "end-datetime": { "type": "string", "pattern": "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}Z$" }
              }
            },
            "contact-info": { "type": "string", "minLength": 1 },
            "report-id": { "type": "string", "minLength": 1 },
            "policies": {
              "type": "array",
              "items": {
                "type": "object",
                "required": ["policy", "summary"],
                "properties": {
                  "policy": {
                    "type": "object",
                    "required": ["policy-type", "policy-domain"],
                    "properties": {
                      "policy-type": { "enum": ["tlsa", "sts", "no-policy-found"] },
                      "policy-string": { "type": "array", "items": { "type": "string" } },
                      "policy-domain": { "type": "string", "minLength": 1 },
                      "mx-host": { "type": "array", "items": { "type": "string" } }
                    }
                  },
                  "summary": {
                    "type": "object",
                    "required": ["total-successful-session-count", "total-failure-session-count"],
                    "properties": {
                      "total-successful-session-count": { "type": "integer", "minimum": 0 },
                      "total-failure-session-count": { "type": "integer", "minimum": 0 }
                    }
                  },
                  "failure-details": {
                    "type": "array",
                    "items": {
                      "type": "object",
                      "required": ["result-type", "failed-session-count"],
                      "properties": {
                        "result-type": { "enum": ["starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                          "certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required",
                          "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"] },
                        "sending-mta-ip": { "type": "string" },
                        "receiving-mx-hostname": { "type": "string" },
                        "receiving-mx-helo": { "type": "string" },
                        "receiving-ip": { "type": "string" },
                        "failed-session-count": { "type": "integer", "minimum": 1 },
                        "additional-information": { "type": "string" },
                        "failure-reason-code": { "type": "string" }
                      }
                    }
                  }
                }
              }
            }
          }
        }
        """;
}
