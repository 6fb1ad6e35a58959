using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.AspNetCore.Mvc.Rendering;
using Postern.Admin;

namespace Postern.Web.Pages.MailFlowPolicies;

/// <summary>A HAT sender group as the form posts it; senders one a line or comma-separated.</summary>
public sealed class SenderGroupForm
{
    /// <summary>The group's name before the edit; empty = a new group.</summary>
    public string? Original { get; set; }
    public string? Name { get; set; }
    public string? Senders { get; set; }
    public string? Policy { get; set; }
}

/// <summary>
/// A listener's Host Access Table: its sender groups in the order they are matched (first match
/// wins), add/edit/delete, move up/down, and the default policy for hosts no group matches.
/// Everyone signed in sees it; the forms are an administrator's (as every change is).
/// </summary>
public sealed class HostAccessModel(WebContext web) : PageModel
{
    [BindProperty(SupportsGet = true, Name = "listener")] public string? Listener { get; set; }
    /// <summary>On GET: the group to edit in the form.</summary>
    [BindProperty(SupportsGet = true, Name = "group")] public string? Group { get; set; }
    [BindProperty] public SenderGroupForm Form { get; set; } = new();
    public List<string> Problems { get; } = [];
    public ListenerSettings Settings { get; private set; } = new();
    public IReadOnlyList<string> Policies { get; private set; } = [];
    public IReadOnlyDictionary<string, MailFlowPolicy> PolicyDetails { get; private set; } = new Dictionary<string, MailFlowPolicy>();

    public bool IsEditing => !string.IsNullOrEmpty(Form.Original);

    /// <summary>The listener of the working configuration, or null when there is none of that name.</summary>
    private bool Load()
    {
        var working = web.Config((s, fallback) => s.Working(fallback));
        Policies = working.MailFlowPolicies.Keys.Order(StringComparer.OrdinalIgnoreCase).ToList();
        PolicyDetails = working.MailFlowPolicies;
        var listener = working.Listeners.FirstOrDefault(l => l.Name.Equals(Listener, StringComparison.OrdinalIgnoreCase));
        if (listener is null) return false;
        Settings = listener;
        Listener = listener.Name;
        return true;
    }

    private IActionResult NoSuchListener()
    {
        TempData["Error"] = $"There is no listener '{Listener}'.";
        return RedirectToPage("/MailFlowPolicies/Index");
    }

    private IActionResult Back() => RedirectToPage("/MailFlowPolicies/HostAccess", new { listener = Listener });

    private ListenerService Service(ConfigService s, PosternConfig fallback) => new(s, fallback, who: WebContext.Who(User));

    public IActionResult OnGet()
    {
        if (Group is { Length: > 0 } && !User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (!Load()) return NoSuchListener();
        if (Group is { Length: > 0 } g)
        {
            var group = Settings.SenderGroups.FirstOrDefault(x => x.Name.Equals(g, StringComparison.OrdinalIgnoreCase));
            if (group is null) { TempData["Error"] = $"Listener {Listener} has no sender group '{g}'."; return Back(); }
            Form = new SenderGroupForm { Original = group.Name, Name = group.Name, Senders = string.Join("\n", group.Senders), Policy = group.Policy };
        }
        return Page();
    }

    public IActionResult OnPostSave()
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (!Load()) return NoSuchListener();
        var name = Check(() => ListenerService.ParseName((Form.Name ?? "").Trim(), "sender group name"));
        var senders = Check(() => ListenerService.ParseSenders((Form.Senders ?? "").Replace('\r', ',').Replace('\n', ',')));
        var policy = Policies.FirstOrDefault(p => p.Equals(Form.Policy, StringComparison.OrdinalIgnoreCase));
        if (policy is null) Problems.Add($"mail flow policy '{Form.Policy}' is not defined");
        if (Problems.Count > 0) return Page();
        var group = new SenderGroup { Name = name!, Senders = senders!, Policy = policy! };
        var original = Form.Original;
        try
        {
            web.Config((s, fallback) =>
            {
                var service = Service(s, fallback);
                var exists = (service.Working.Listeners.FirstOrDefault(l => l.Name == Listener) ?? throw new ConfigException($"there is no listener '{Listener}'"))
                    .SenderGroups.Any(g => g.Name.Equals(name, StringComparison.OrdinalIgnoreCase));
                if (string.IsNullOrEmpty(original))
                {
                    // Add: a new group goes last; a name already used is refused, not silently replaced.
                    if (exists) throw new ConfigException($"listener '{Listener}' has a sender group '{name}' already");
                    service.SetGroup(Listener!, group);
                }
                else if (original.Equals(name, StringComparison.OrdinalIgnoreCase)) service.SetGroup(Listener!, group);
                else
                {
                    // Renamed: it keeps its place in the order.
                    if (exists) throw new ConfigException($"listener '{Listener}' has a sender group '{name}' already");
                    service.Edit(Listener!, l =>
                    {
                        var i = l.SenderGroups.FindIndex(g => g.Name.Equals(original, StringComparison.OrdinalIgnoreCase));
                        if (i < 0) throw new ConfigException($"listener '{Listener}' has no sender group '{original}'");
                        l.SenderGroups[i] = group;
                    });
                }
                return 0;
            });
        }
        catch (ConfigException e)
        {
            Problems.AddRange(ConfigProblems.Lines(e.Message));
            return Page();
        }
        web.Audit(User, $"{(string.IsNullOrEmpty(original) ? "added" : "changed")} sender group {name} of listener {Listener} (staged)");
        TempData["Notice"] = $"Sender group {name} of {Listener} is staged. Commit to apply it (to new sessions).";
        return Back();
    }

    public IActionResult OnPostDelete(string group)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (!Load()) return NoSuchListener();
        try
        {
            web.Config((s, fallback) => { Service(s, fallback).RemoveGroup(Listener!, group); return 0; });
            web.Audit(User, $"deleted sender group {group} of listener {Listener} (staged)");
            TempData["Notice"] = $"Sender group {group} of {Listener} deleted. Commit to apply it.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return Back();
    }

    /// <summary>Moves a group one place up (matched earlier) or down.</summary>
    public IActionResult OnPostMove(string group, string direction)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (!Load()) return NoSuchListener();
        var i = Settings.SenderGroups.FindIndex(g => g.Name.Equals(group, StringComparison.OrdinalIgnoreCase));
        try
        {
            if (i < 0) throw new ConfigException($"listener '{Listener}' has no sender group '{group}'");
            var position = i + 1 + (direction == "up" ? -1 : 1);
            web.Config((s, fallback) => { Service(s, fallback).MoveGroup(Listener!, group, position); return 0; });
            web.Audit(User, $"moved sender group {group} of listener {Listener} to position {position} (staged)");
            TempData["Notice"] = $"Sender group {group} is now number {position} of {Listener}'s HAT. Commit to apply it.";
        }
        catch (ConfigException e) { TempData["Error"] = e.Message; }
        return Back();
    }

    public IActionResult OnPostDefault(string? policy)
    {
        if (!User.IsInRole(WebServer.AdministratorRole)) return Forbid();
        if (!Load()) return NoSuchListener();
        var chosen = Policies.FirstOrDefault(p => p.Equals(policy, StringComparison.OrdinalIgnoreCase));
        try
        {
            if (chosen is null) throw new ConfigException($"mail flow policy '{policy}' is not defined");
            web.Config((s, fallback) => { Service(s, fallback).Edit(Listener!, l => l.DefaultPolicy = chosen); return 0; });
        }
        catch (ConfigException e)
        {
            Problems.AddRange(ConfigProblems.Lines(e.Message));
            return Page();
        }
        web.Audit(User, $"set the default policy of listener {Listener} to {chosen} (staged)");
        TempData["Notice"] = $"The default policy of {Listener} is {chosen}, staged. Commit to apply it.";
        return Back();
    }

    private T Check<T>(Func<T> parse)
    {
        try { return parse(); }
        catch (ConfigException e) { Problems.Add(e.Message); return default!; }
    }

    public string Describe(string policy) =>
        PolicyDetails.TryGetValue(policy, out var p) ? $"{PolicyText.Action(p.Action)}, TLS {PolicyText.Tls(p.Tls)}" : "not defined";

    public IEnumerable<SelectListItem> PolicyChoices(string? selected) =>
        Policies.Select(p => new SelectListItem($"{p} ({Describe(p)})", p, p.Equals(selected, StringComparison.OrdinalIgnoreCase)));
}
