using System.CommandLine;
using System.Text;
using System.Text.Json;
using Postern.Web;

namespace Postern.Admin;

/// <summary>`postern adminuser list|add|passwd|role|delete`: the web interface's local accounts.</summary>
public static class AdminUserCommands
{
    public static Command Build(Option<FileInfo?> configOption, Option<bool> jsonOption, Func<FileInfo?, PosternConfig?> loadConfig)
    {
        var command = new Command("adminuser", "Accounts of the web interface: administrators, operators, read-only users");
        var name = new Argument<string>("name") { Description = "User name" };
        var role = new Option<string>("--role") { Description = "administrator | operator | readonly", DefaultValueFactory = _ => "readonly", HelpName = "ROLE" };
        var passwordFile = new Option<FileInfo?>("--password-file") { Description = "File whose first line is the password (else it is read from standard input, hidden on a terminal)" };

        int With(ParseResult p, Func<WebUserService, int> action)
        {
            var config = loadConfig(p.GetValue(configOption));
            if (config is null) return 2;
            var data = Path.GetFullPath(config.DataDirectory);
            try
            {
                using var store = new SqliteWebUserStore(SqliteWebUserStore.PathFor(data));
                return action(new WebUserService(store, () => DateTimeOffset.UtcNow, config.Web.MaxFailedLogins, config.Web.LockoutMinutes));
            }
            catch (ConfigException e)
            {
                Console.Error.WriteLine($"postern: {e.Message}");
                return 2;
            }
        }

        var list = new Command("list", "The accounts with their roles, and which are locked out") { configOption, jsonOption };
        list.SetAction(p => With(p, users =>
        {
            var rows = users.List().Select(u => new { u.Name, role = u.Role.ToString(), lockedUntil = u.LockedUntil > DateTimeOffset.UtcNow ? u.LockedUntil : null }).ToList();
            if (p.GetValue(jsonOption)) { Console.WriteLine(JsonSerializer.Serialize(rows, PosternConfig.JsonOptions)); return 0; }
            if (rows.Count == 0) Console.WriteLine("No accounts yet: the first start of the web interface creates 'admin'.");
            foreach (var r in rows) Console.WriteLine($"{r.Name,-24} {r.role,-14}{(r.lockedUntil is { } l ? $" locked out until {l.UtcDateTime:u}" : "")}");
            return 0;
        }));

        var add = new Command("add", "Add an account") { name, role, passwordFile, configOption };
        add.SetAction(p => With(p, users =>
        {
            var user = users.Add(p.GetValue(name)!, ParseRole(p.GetValue(role)!), ReadPassword(p.GetValue(passwordFile)));
            Console.WriteLine($"Account {user.Name} ({user.Role}) added.");
            return 0;
        }));

        var passwd = new Command("passwd", "Set an account's password (and lift a lock-out)") { name, passwordFile, configOption };
        passwd.SetAction(p => With(p, users =>
        {
            users.SetPassword(p.GetValue(name)!, ReadPassword(p.GetValue(passwordFile)));
            Console.WriteLine($"Password of {p.GetValue(name)} changed; a lock-out is lifted.");
            return 0;
        }));

        var roleArgument = new Argument<string>("role") { Description = "administrator | operator | readonly" };
        var setRole = new Command("role", "Change an account's role (its open sessions end)") { name, roleArgument, configOption };
        setRole.SetAction(p => With(p, users =>
        {
            users.SetRole(p.GetValue(name)!, ParseRole(p.GetValue(roleArgument)!));
            Console.WriteLine($"{p.GetValue(name)} is now {ParseRole(p.GetValue(roleArgument)!)}.");
            return 0;
        }));

        var delete = new Command("delete", "Delete an account (its open sessions end)") { name, configOption };
        delete.SetAction(p => With(p, users =>
        {
            users.Delete(p.GetValue(name)!);
            Console.WriteLine($"Account {p.GetValue(name)} deleted.");
            return 0;
        }));

        foreach (var c in new[] { list, add, passwd, setRole, delete }) command.Subcommands.Add(c);
        return command;
    }

    private static WebRole ParseRole(string text) => text.ToLowerInvariant().Replace("-", "") switch
    {
        "administrator" or "admin" => WebRole.Administrator,
        "operator" => WebRole.Operator,
        "readonly" => WebRole.ReadOnly,
        _ => throw new ConfigException($"role '{text}' is not administrator, operator or readonly"),
    };

    /// <summary>From the file, else standard input (hidden when it is a terminal); never from the command line, where ps would show it.</summary>
    private static string ReadPassword(FileInfo? file)
    {
        if (file is not null)
        {
            try { return File.ReadLines(file.FullName).FirstOrDefault() ?? ""; }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new ConfigException($"cannot read {file.FullName}: {e.Message}"); }
        }
        if (Console.IsInputRedirected) return Console.In.ReadLine() ?? "";
        Console.Write("Password: ");
        var text = new StringBuilder();
        while (true)
        {
            var key = Console.ReadKey(intercept: true);
            if (key.Key == ConsoleKey.Enter) break;
            if (key.Key == ConsoleKey.Backspace) { if (text.Length > 0) text.Length--; }
            else if (!char.IsControl(key.KeyChar) && text.Length < 1024) text.Append(key.KeyChar);
        }
        Console.WriteLine();
        return text.ToString();
    }
}
