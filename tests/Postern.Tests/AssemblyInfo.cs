// The tests drive Linux peers (Postfix, unbound, nsd) and check Unix file modes.
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
