using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Postern.Admin;

namespace Postern.Web.Pages.Listeners;

/// <summary>Network &gt; Listeners: the listeners of the working configuration (staged changes included), delete.</summary>
public sealed class ListenersModel(WebContext web) : PageModel
{
    public IReadOnlyList<ListenerSettings> Listeners { get; private set; } = [];
    /// <summary>Listeners in force that the working configuration no longer has: they stop accepting when the change is committed.</summary>
    public IReadOnlyList<string> Removed { get; private set; } = [];

    public void OnGet()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        Listeners = working.Listeners;
        Removed = web.Live.Listeners.Where(b => working.Listeners.All(l => !l.Name.Equals(b.Name, StringComparison.OrdinalIgnoreCase))).Select(b => b.Name).ToList();
    }

    /// <summary>What a commit will do to this listener's socket (the running gateway binds, moves and retires listeners live).</summary>
    public string? CommitNote(ListenerSettings listener) => ListenerPages.CommitNote(web.Live, listener);

    public IActionResult OnPostDelete(string name)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        try
        {
            web.Config((s, fallback) => { new ListenerService(s, fallback, who: WebContext.Who(User)).Delete(name); return 0; });
            web.Audit(User, $"deleted listener {name} (staged)");
            TempData["Notice"] = $"Listener {name} deleted. Commit to apply it: it then stops accepting connections, and its open sessions finish.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return RedirectToPage();
    }
}

/// <summary>What the listener pages share.</summary>
public static class ListenerPages
{
    /// <summary>Compared with the configuration in force: what committing the working one does to this listener's socket.</summary>
    public static string CommitNote(PosternConfig inForce, ListenerSettings listener)
    {
        var bound = inForce.Listeners.FirstOrDefault(b => b.Name.Equals(listener.Name, StringComparison.OrdinalIgnoreCase));
        if (bound is null) return "new: bound when committed";
        // Port 0 (any free port) is what was asked, whatever port the kernel gave.
        return bound.Address != listener.Address || bound.Port != listener.Port ? $"moves to {listener.Address}:{listener.Port} when committed" : "";
    }

    /// <summary>The certificate a listener presents for STARTTLS, as the dialogue names it.</summary>
    public static string CertificateName(ListenerSettings l) =>
        l.Certificate ?? (l.CertificateFile is not null ? $"PEM files ({l.CertificateFile})" : "Demo certificate");
}
