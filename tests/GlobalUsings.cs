global using NUnit.Framework;
global using MapType = BpfJit.Frontend.Elf.MapType;
