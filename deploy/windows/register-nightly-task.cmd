@echo off
rem comfycheck nightly run for the reference deployment: ComfyUI in WSL behind IIS on this Windows host.
rem The suite runs inside the WSL distribution, beside ComfyUI; Task Scheduler starts it through wsl.exe.
rem Run this once, in a command prompt as the Windows user who owns the WSL distribution (WSL distributions
rem are per user: a task running as SYSTEM cannot see it). schtasks asks for that user's password so the task
rem runs whether or not the user is logged on.
rem   DISTRO     the WSL distribution (wsl.exe -l -v lists them)
rem   CHECKOUT   the comfycheck checkout inside it
rem   PROFILE    the profile inside it
set DISTRO=Ubuntu
set CHECKOUT=/opt/comfycheck
set PROFILE=/etc/comfycheck/production.toml

schtasks /Create /F /TN "comfycheck\nightly" /SC DAILY /ST 03:00 /RU "%USERNAME%" /RP * ^
  /TR "wsl.exe -d %DISTRO% -- %CHECKOUT%/deploy/nightly.sh %PROFILE%"

rem To run it now and see its result:
rem   schtasks /Run /TN "comfycheck\nightly"
rem   schtasks /Query /TN "comfycheck\nightly" /V /FO LIST     (Last Result: 0 passed, 1 a check failed)
