using BpfJit.IlEmitter;
using BpfJit.Runtime;

namespace BpfJit.Tests.Support;

/// <summary>Every engine; tests that take an engine run once per entry, from one table of cases.</summary>
public static class Engines
{
    /// <summary>The engines, by name.</summary>
    public static IReadOnlyDictionary<string, IBpfEngine> ByName => BpfEngines.ByName;

    /// <summary>Engine names for [TestCaseSource]/[ValueSource].</summary>
    public static IEnumerable<string> Names => ByName.Keys;

    /// <summary>The engine called <paramref name="name"/>.</summary>
    public static IBpfEngine Get(string name) => ByName[name];
}
