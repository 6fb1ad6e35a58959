namespace Postern.Web.Pages;

/// <summary>A ConfigException's message as lines for #problems ("invalid configuration:" and the bullets dropped).</summary>
public static class ConfigProblems
{
    public static IEnumerable<string> Lines(string message) =>
        message.Split('\n').Select(l => l.Trim().TrimStart('-', ' ')).Where(l => l.Length > 0 && l != "invalid configuration:");
}
